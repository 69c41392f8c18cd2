"""A loopback HTTP server that answers the part of Stripe's API the app calls.

Objects are Stripe's documented shapes: each starts from the example object in
Stripe's OpenAPI fixtures (stripe_objects.json, taken from github.com/stripe/openapi,
MIT licensed) and is filled in with what the request asked for. Requests are
form-encoded exactly as the official SDK sends them and are recorded (method,
path, params, Idempotency-Key, Stripe-Version) so tests can assert what the app
sent. A repeated Idempotency-Key answers the first response, as Stripe does.

Failures are injected per call: ``fail("POST", "/v1/checkout/sessions", status=500)``
or ``delay("POST", "/v1/prices", seconds=5)``. ``fail(..., saved=True)`` keeps the failure
under the request's Idempotency-Key, as Stripe does once a request has begun executing:
a retry with that key gets the same answer, marked ``Idempotent-Replayed: true``.

Beyond the API, the fake plays Stripe's side of a payment: ``complete_checkout``
turns an open Checkout Session into a customer with a paid subscription and
returns the events Stripe would send; ``subscription_event`` changes a
subscription and returns its ``customer.subscription.updated`` event;
``signed`` signs an event body with Stripe's scheme for POST /webhooks/stripe.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import threading
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from tests.http_server import LoopbackHTTPServer

OBJECTS = json.loads((Path(__file__).with_name("stripe_objects.json")).read_text())
API_VERSION = "2026-10-28.endive"
WEBHOOK_SECRET = "whsec_test_secret"
DECIMAL_AMOUNT = re.compile(r"\d{1,20}(\.\d{1,12})?")


def decode_form(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (``items[0][price]=x``, ``metadata[plan]=pro``) into nested values."""
    root: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part, following in zip(parts, parts[1:]):
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        self.status, self.body = status, {"error": {"type": type_, "message": message, "code": code,
                                                    "param": param}}


@dataclass
class Call:
    method: str
    path: str
    params: dict
    idempotency_key: str | None
    stripe_version: str | None
    authorization: str | None


@dataclass
class Injected:
    method: str
    path: str
    status: int | None = None
    seconds: float = 0.0
    times: int = 1
    saved: bool = False


@dataclass
class FakeStripe:
    webhook_secret: str = WEBHOOK_SECRET
    calls: list = field(default_factory=list)
    objects: dict = field(default_factory=dict)      # id -> object
    meter_events: dict = field(default_factory=dict)  # identifier -> event
    events: list = field(default_factory=list)
    injected: list = field(default_factory=list)
    clock: float = field(default_factory=lambda: float(int(time.time())))

    def __post_init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._idempotent: dict = {}
        # Bumped by reset(): a delayed request of an earlier test must not act on the next test's state.
        self._generation = 0
        self.server = LoopbackHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeStripe":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.objects.clear()
            self.meter_events.clear()
            self.events.clear()
            self.injected.clear()
            self._idempotent.clear()
            self._generation += 1

    # -- test controls -----------------------------------------------------------------------
    def fail(self, method: str, path: str, *, status: int = 500, times: int = 1, saved: bool = False) -> None:
        """The next ``times`` calls to ``method path`` (a prefix) answer ``status``.

        ``saved``: the answer is kept under the call's Idempotency-Key and replayed to a
        retry with the same key (Stripe does so for 500s for 24 hours).
        """
        self.injected.append(Injected(method, path, status=status, times=times, saved=saved))

    def delay(self, method: str, path: str, *, seconds: float, times: int = 1) -> None:
        """The next ``times`` calls to ``method path`` (a prefix) answer after ``seconds``."""
        self.injected.append(Injected(method, path, seconds=seconds, times=times))

    def forget_idempotency_keys(self) -> None:
        """What Stripe does to a key 24 hours on: a retry with it is a new request."""
        self.expire_idempotency_keys()

    def expire_idempotency_keys(self) -> None:
        """Forget every Idempotency-Key, as Stripe does after 24 hours (what an object itself dedupes on stays)."""
        with self._lock:
            self._idempotent.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Calls received, oldest first; filtered by method and path prefix."""
        return [c for c in self.calls if (method is None or c.method == method)
                and (path is None or c.path.startswith(path))]

    def tick(self, seconds: float = 1.0) -> int:
        self.clock += seconds
        return int(self.clock)

    def now(self) -> int:
        return int(self.clock)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    # -- objects -----------------------------------------------------------------------------
    def template(self, kind: str) -> dict:
        return copy.deepcopy(OBJECTS[kind])

    def store(self, obj: dict) -> dict:
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: str, kind: str | None = None) -> dict:
        obj = self.objects.get(object_id)
        if obj is None or (kind is not None and obj["object"] != kind):
            raise StripeError(404, f"No such {(kind or 'object').split('.')[-1]}: '{object_id}'",
                              code="resource_missing", param="id")
        return obj

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects.values() if o["object"] == kind]

    def customer(self, email: str = "owner@example.com", **metadata) -> dict:
        obj = self.template("customer")
        obj.update(id=self.new_id("cus"), email=email, name=None, created=self.now(), metadata=dict(metadata),
                   livemode=False, test_clock=None, discount=None, default_source=None, delinquent=False,
                   balance=0, currency=None, description=None)
        return self.store(obj)

    def price(self, params: dict) -> dict:
        obj = self.template("price")
        recurring = params.get("recurring")
        obj.update(id=self.new_id("price"), active=True, created=self.now(), currency=params.get("currency", "usd"),
                   lookup_key=params.get("lookup_key"), metadata=params.get("metadata", {}),
                   nickname=params.get("nickname"), product=params.get("product"),
                   billing_scheme=params.get("billing_scheme", "per_unit"), livemode=False,
                   custom_unit_amount=None, tiers_mode=None, transform_quantity=None,
                   tax_behavior=params.get("tax_behavior", "unspecified"),
                   type="recurring" if recurring else "one_time")
        amount = params.get("unit_amount_decimal") or params.get("unit_amount")
        if params.get("unit_amount_decimal") is not None and not DECIMAL_AMOUNT.fullmatch(params["unit_amount_decimal"]):
            # Stripe takes a decimal string in cents with at most 12 decimal places.
            raise StripeError(400, f"Invalid decimal: {params['unit_amount_decimal']}", param="unit_amount_decimal")
        obj["unit_amount_decimal"] = str(amount) if amount is not None else None
        whole = amount is not None and Decimal(str(amount)) == Decimal(str(amount)).to_integral_value()
        obj["unit_amount"] = int(Decimal(str(amount))) if whole else None
        if recurring:
            obj["recurring"] = {"interval": recurring.get("interval", "month"),
                                "interval_count": int(recurring.get("interval_count", 1)),
                                "meter": recurring.get("meter"), "trial_period_days": None,
                                "usage_type": recurring.get("usage_type", "licensed")}
        else:
            obj["recurring"] = None
        if obj["lookup_key"] is not None:
            holder = [p for p in self.of_kind("price") if p["lookup_key"] == obj["lookup_key"]]
            if holder and params.get("transfer_lookup_key") != "true":
                raise StripeError(400, f"A price (`{holder[0]['id']}`) already uses that lookup key.",
                                  param="lookup_key")
            for other in holder:
                other["lookup_key"] = None
        return self.store(obj)

    def subscription_item(self, subscription_id: str, price: dict, quantity: int | None, start: int, end: int) -> dict:
        item = self.template("subscription_item")
        item.update(id=self.new_id("si"), created=self.now(), price=copy.deepcopy(price), subscription=subscription_id,
                    metadata={}, discounts=[], tax_rates=[], billing_thresholds=None,
                    current_period_start=start, current_period_end=end)
        item["quantity"] = quantity
        item.pop("plan", None)
        return item

    def subscription(self, customer_id: str, prices: list[dict], *, status: str = "active", trial_days: int = 0,
                     metadata: dict | None = None) -> dict:
        obj = self.template("subscription")
        sub_id = self.new_id("sub")
        start = self.now()
        end = start + 30 * 86400
        trial_end = start + trial_days * 86400 if trial_days else None
        if trial_end:
            status, end = "trialing", trial_end
        items = [self.subscription_item(sub_id, p, None if (p.get("recurring") or {}).get("usage_type") == "metered"
                                        else 1, start, end) for p in prices]
        obj.update(id=sub_id, customer=customer_id, status=status, created=start, start_date=start,
                   billing_cycle_anchor=end if trial_end else start, cancel_at=None, canceled_at=None, ended_at=None,
                   cancel_at_period_end=False, trial_start=start if trial_end else None, trial_end=trial_end,
                   metadata=dict(metadata or {}), latest_invoice=None, livemode=False, pause_collection=None,
                   discounts=[], default_payment_method=None, description=None, next_pending_invoice_item_invoice=None,
                   items={"object": "list", "data": items, "has_more": False,
                          "url": f"/v1/subscription_items?subscription={sub_id}"})
        return self.store(obj)

    def invoice(self, subscription: dict, *, status: str = "paid", amount: int | None = None,
                billing_reason: str = "subscription_create") -> dict:
        obj = self.template("invoice")
        inv_id = self.new_id("in")
        if amount is None:
            amount = sum((i["price"].get("unit_amount") or 0) * (i.get("quantity") or 0)
                         for i in subscription["items"]["data"])
        paid = status == "paid"
        obj.update(id=inv_id, customer=subscription["customer"], status=status, created=self.now(),
                   amount_due=amount, amount_paid=amount if paid else 0, amount_remaining=0 if paid else amount,
                   total=amount, subtotal=amount, currency="usd", billing_reason=billing_reason, livemode=False,
                   number=f"FAKE-{inv_id[-4:]}", hosted_invoice_url=f"{self.url}/i/{inv_id}",
                   invoice_pdf=f"{self.url}/i/{inv_id}/pdf", attempt_count=1, attempted=True,
                   period_start=self.now(), period_end=self.now(), metadata={},
                   parent={"type": "subscription_details", "quote_details": None,
                           "subscription_details": {"metadata": subscription.get("metadata", {}),
                                                    "subscription": subscription["id"]}})
        obj["lines"] = {"object": "list", "has_more": False, "url": f"/v1/invoices/{inv_id}/lines", "data": [
            {"id": self.new_id("il"), "object": "line_item", "amount": (i["price"].get("unit_amount") or 0)
             * (i.get("quantity") or 0), "currency": "usd", "description": i["price"].get("nickname") or "",
             "quantity": i.get("quantity"), "livemode": False, "metadata": {}, "invoice": inv_id,
             "period": {"start": i["current_period_start"], "end": i["current_period_end"]},
             "pricing": {"type": "price_details", "price_details": {"price": i["price"]["id"],
                                                                    "product": i["price"]["product"]},
                         "unit_amount_decimal": i["price"].get("unit_amount_decimal")},
             "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                        "subscription_item_details": {"invoice_item": None, "proration": False,
                                                      "proration_details": {"credited_items": None},
                                                      "subscription": subscription["id"],
                                                      "subscription_item": i["id"]}}}
            for i in subscription["items"]["data"]]}
        subscription["latest_invoice"] = inv_id
        return self.store(obj)

    # -- events ------------------------------------------------------------------------------
    def event(self, type_: str, obj: dict, previous_attributes: dict | None = None, *,
              created: int | None = None, delivered: bool = True) -> dict:
        """An Event as Stripe sends it to a webhook endpoint, recorded for GET /v1/events."""
        event = self.template("event")
        event.update(id=self.new_id("evt"), type=type_, created=created if created is not None else self.tick(),
                     api_version=API_VERSION, livemode=False, pending_webhooks=0 if delivered else 1,
                     request={"id": self.new_id("req"), "idempotency_key": None},
                     data={"object": copy.deepcopy(obj)})
        if previous_attributes is not None:
            event["data"]["previous_attributes"] = previous_attributes
        self.events.append(event)
        return event

    def signed(self, event: dict | bytes | str, *, secret: str | None = None,
               timestamp: int | None = None) -> tuple[bytes, dict]:
        """The body and headers of a webhook delivery, signed with Stripe's ``t=,v1=`` scheme."""
        body = event if isinstance(event, bytes) else (
            event.encode() if isinstance(event, str) else json.dumps(event).encode())
        timestamp = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new((secret or self.webhook_secret).encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        return body, {"Stripe-Signature": f"t={timestamp},v1={mac.hexdigest()}",
                      "Content-Type": "application/json"}

    def complete_checkout(self, session_id: str, *, status: str | None = None) -> list[dict]:
        """The customer pays: the events Stripe sends, in Stripe's usual order."""
        with self._lock:
            session = self.get(session_id, "checkout.session")
            customer_id = session["customer"]
            if customer_id is None:
                customer_id = self.customer(session.get("customer_email") or "payer@example.com")["id"]
            prices = [self.get(line["price"], "price") for line in session["_line_items"]]
            trial = int((session.get("_subscription_data") or {}).get("trial_period_days") or 0)
            sub = self.subscription(customer_id, prices, trial_days=trial,
                                    metadata=(session.get("_subscription_data") or {}).get("metadata"))
            if status:
                sub["status"] = status
            invoice = self.invoice(sub, amount=0 if trial else None)
            session.update(status="complete", payment_status="paid", customer=customer_id, subscription=sub["id"],
                           invoice=invoice["id"])
            public = self.public(session)
            return [self.event("checkout.session.completed", public),
                    self.event("customer.subscription.created", sub),
                    self.event("invoice.paid", invoice)]

    def subscription_event(self, subscription_id: str, type_: str = "customer.subscription.updated", *,
                           at: int | None = None, delivered: bool = True, **changes) -> dict:
        """Change a subscription as Stripe would (status, cancel_at_period_end...) and return the event.

        ``at``: the event's ``created`` (default: the clock, one second on); ``delivered=False``:
        Stripe failed to deliver it (GET /v1/events?delivery_success=false lists it).
        """
        with self._lock:
            sub = self.get(subscription_id, "subscription")
            previous = {k: sub.get(k) for k in changes}
            sub.update(changes)
            if changes.get("status") == "canceled" and sub.get("ended_at") is None:
                sub["ended_at"] = sub["canceled_at"] = self.now()
            return self.event(type_, sub, previous, created=at, delivered=delivered)

    def invoice_event(self, subscription_id: str, type_: str, *, at: int | None = None,
                      delivered: bool = True) -> dict:
        """``invoice.paid``, ``invoice.payment_failed`` or ``invoice.payment_action_required`` for a subscription."""
        with self._lock:
            sub = self.get(subscription_id, "subscription")
            status = "paid" if type_ == "invoice.paid" else "open"
            invoice = self.invoice(sub, status=status, billing_reason="subscription_cycle")
            return self.event(type_, invoice, created=at, delivered=delivered)

    @staticmethod
    def public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # -- the API -----------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict, headers) -> tuple[int, dict, dict]:
        """(status, body, response headers) for one request."""
        call = Call(method, path, params, headers.get("Idempotency-Key"), headers.get("Stripe-Version"),
                    headers.get("Authorization"))
        request_id = self.new_id("req")
        answered = {"Request-Id": request_id}
        key = (call.idempotency_key, method, path) if method == "POST" and call.idempotency_key else None
        with self._lock:
            generation = self._generation
            self.calls.append(call)
            for injected in self.injected:
                if injected.method == method and path.startswith(injected.path) and injected.times > 0:
                    injected.times -= 1
                    break
            else:
                injected = None
        if injected is not None and injected.seconds:
            time.sleep(injected.seconds)
            if generation != self._generation:  # the test that delayed it is over; its client gave up
                return 503, {"error": {"type": "api_error", "message": "Abandoned.", "code": None, "param": None}}
        if injected is not None and injected.status:
            answer = injected.status, {"error": {"type": "api_error", "message": "An unknown error occurred.",
                                                 "code": None, "param": None}}
            if injected.saved and key:
                with self._lock:
                    self._idempotent[key] = answer, request_id
            return *answer, answered
        if not (call.authorization or "").startswith("Bearer sk_"):
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}, answered
        with self._lock:
            if key and key in self._idempotent:
                (status, body), original = self._idempotent[key]
                return status, body, {**answered, "Idempotent-Replayed": "true", "Original-Request": original}
            try:
                answer = 200, self.route(method, path, params)
            except StripeError as exc:
                answer = exc.status, exc.body
            if key:
                self._idempotent[key] = answer, request_id
            return *answer, answered

    def route(self, method: str, path: str, params: dict) -> dict:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        name = "/".join("{id}" if "_fake" in p else p for p in parts)
        ident = next((p for p in parts if "_fake" in p), None)
        handler = ROUTES.get((method, name))
        if handler is None:
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        return handler(self, ident, params) if ident else handler(self, params)

    def listing(self, items: list[dict], url: str, params: dict) -> dict:
        limit = int(params.get("limit", 10))
        items = sorted(items, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)
        if params.get("starting_after"):
            ids = [o["id"] for o in items]
            items = items[ids.index(params["starting_after"]) + 1:] if params["starting_after"] in ids else []
        return {"object": "list", "url": url, "has_more": len(items) > limit,
                "data": [self.public(o) for o in items[:limit]]}


# -- route handlers ----------------------------------------------------------------------------
def _update(obj: dict, params: dict, allowed: tuple[str, ...]) -> dict:
    for name in allowed:
        if name in params:
            value = params[name]
            if name == "metadata":
                obj["metadata"] = {**obj.get("metadata", {}), **{k: v for k, v in value.items() if v != ""}}
            elif name == "active":
                obj["active"] = value == "true"
            elif value == "":
                obj[name] = None
            else:
                obj[name] = value
    obj["updated"] = int(time.time())
    return obj


def create_customer(fake, params):
    return fake.public(fake.customer(params.get("email") or None, **params.get("metadata", {})) | {
        "name": params.get("name")})


def create_product(fake, params):
    obj = fake.template("product")
    obj.update(id=fake.new_id("prod"), name=params["name"], description=params.get("description") or None,
               active=params.get("active", "true") == "true", metadata=params.get("metadata", {}),
               created=fake.now(), updated=fake.now(), livemode=False, default_price=None, images=[],
               marketing_features=[], package_dimensions=None, shippable=None, statement_descriptor=None,
               tax_code=None, unit_label=None, url=None)
    return fake.store(obj)


def list_products(fake, params):
    items = fake.of_kind("product")
    if "active" in params:
        items = [p for p in items if p["active"] == (params["active"] == "true")]
    return fake.listing(items, "/v1/products", params)


def list_prices(fake, params):
    items = fake.of_kind("price")
    if "lookup_keys" in params:
        keys = params["lookup_keys"] if isinstance(params["lookup_keys"], list) else [params["lookup_keys"]]
        items = [p for p in items if p["lookup_key"] in keys]
    if "product" in params:
        items = [p for p in items if p["product"] == params["product"]]
    if "active" in params:
        items = [p for p in items if p["active"] == (params["active"] == "true")]
    return fake.listing(items, "/v1/prices", params)


def update_price(fake, ident, params):
    price = fake.get(ident, "price")
    if "lookup_key" in params and params["lookup_key"]:
        for other in fake.of_kind("price"):
            if other is not price and other["lookup_key"] == params["lookup_key"]:
                if params.get("transfer_lookup_key") != "true":
                    raise StripeError(400, "That lookup key is in use.", param="lookup_key")
                other["lookup_key"] = None
    return fake.public(_update(price, params, ("active", "metadata", "nickname", "lookup_key")))


def create_meter(fake, params):
    if any(m["event_name"] == params["event_name"] for m in fake.of_kind("billing.meter")):
        raise StripeError(400, f"A meter with event_name {params['event_name']} already exists.",
                          param="event_name")
    obj = fake.template("billing.meter")
    obj.update(id=fake.new_id("meter"), display_name=params["display_name"], event_name=params["event_name"],
               default_aggregation={"formula": params["default_aggregation"]["formula"]},
               customer_mapping={"event_payload_key": (params.get("customer_mapping") or {}).get(
                   "event_payload_key", "stripe_customer_id"), "type": "by_id"},
               value_settings={"event_payload_key": (params.get("value_settings") or {}).get(
                   "event_payload_key", "value")}, created=fake.now(), updated=fake.now(), livemode=False,
               status="active", event_time_window=params.get("event_time_window"))
    return fake.store(obj)


def set_meter_status(status):
    def handler(fake, ident, params):
        meter = fake.get(ident, "billing.meter")
        meter.update(status=status, updated=fake.now(),
                     status_transitions={"deactivated_at": fake.now() if status == "inactive" else None})
        return fake.public(meter)
    return handler


def create_meter_event(fake, params):
    meter = next((m for m in fake.of_kind("billing.meter") if m["event_name"] == params.get("event_name")), None)
    if meter is None:
        raise StripeError(400, f"No active meter found for event_name {params.get('event_name')!r}.",
                          param="event_name")
    payload = params.get("payload") or {}
    if params.get("timestamp") is not None:
        # Stripe takes events from the past 35 days up to 5 minutes ahead.
        now = max(fake.now(), int(time.time()))
        if not now - 35 * 86400 <= int(params["timestamp"]) <= now + 300:
            raise StripeError(400, "Timestamp must be within the past 35 days and not more than 5 minutes in "
                                   "the future.", param="timestamp")
    customer = payload.get(meter["customer_mapping"]["event_payload_key"])
    fake.get(customer or "", "customer")
    identifier = params.get("identifier") or fake.new_id("mev")
    if identifier in fake.meter_events:  # Stripe dedupes on the identifier
        return fake.meter_events[identifier]
    obj = fake.template("billing.meter_event")
    obj.update(created=fake.now(), event_name=params["event_name"], identifier=identifier, livemode=False,
               payload={k: str(v) for k, v in payload.items()}, timestamp=int(params.get("timestamp") or fake.now()))
    fake.meter_events[identifier] = obj
    return obj


def meter_event_summaries(fake, ident, params):
    meter = fake.get(ident, "billing.meter")
    for name in ("customer", "start_time", "end_time"):
        if not params.get(name):
            raise StripeError(400, f"Missing required param: {name}.", param=name)
    start, end = int(params["start_time"]), int(params["end_time"])
    for name, value in (("start_time", start), ("end_time", end)):
        if value % 60:
            raise StripeError(400, f"{name} must be aligned with minute boundaries.", param=name)
    value = sum(float(e["payload"].get(meter["value_settings"]["event_payload_key"], 0))
                for e in fake.meter_events.values()
                if e["event_name"] == meter["event_name"] and start <= e["timestamp"] < end
                and e["payload"].get(meter["customer_mapping"]["event_payload_key"]) == params["customer"])
    summary = fake.template("billing.meter_event_summary")
    summary.update(id=fake.new_id("mtrusg"), aggregated_value=value, start_time=start, end_time=end,
                   meter=meter["id"], livemode=False)
    return {"object": "list", "url": f"/v1/billing/meters/{ident}/event_summaries", "has_more": False,
            "data": [summary]}


def create_checkout_session(fake, params):
    if params.get("mode") != "subscription":
        raise StripeError(400, "This fake only sells subscriptions.", param="mode")
    lines = params.get("line_items") or []
    for n, line in enumerate(lines):
        price = fake.get(line.get("price", ""), "price")
        metered = (price.get("recurring") or {}).get("usage_type") == "metered"
        if metered and "quantity" in line:
            raise StripeError(400, "Quantity should not be specified where usage_type is `metered`. Remove "
                              "quantity from `line_items[%d]`." % n, param=f"line_items[{n}][quantity]")
        if not metered and "quantity" not in line:
            raise StripeError(400, f"Missing required param: line_items[{n}][quantity].",
                              param=f"line_items[{n}][quantity]")
    if params.get("customer"):
        fake.get(params["customer"], "customer")
    obj = fake.template("checkout.session")
    cs_id = fake.new_id("cs")
    obj.update(id=cs_id, mode="subscription", status="open", payment_status="unpaid", created=fake.now(),
               expires_at=fake.now() + 86400, customer=params.get("customer"), customer_email=params.get("customer_email"),
               client_reference_id=params.get("client_reference_id"), metadata=params.get("metadata", {}),
               success_url=params.get("success_url"), cancel_url=params.get("cancel_url"),
               url=f"{fake.url}/checkout/{cs_id}", subscription=None, invoice=None, payment_intent=None,
               livemode=False, currency="usd", amount_total=None, amount_subtotal=None, shipping_cost=None,
               shipping_address_collection=None, total_details=None)
    obj["_line_items"] = lines
    obj["_subscription_data"] = params.get("subscription_data") or {}
    fake.store(obj)
    return fake.public(obj)


def create_portal_session(fake, params):
    fake.get(params.get("customer", ""), "customer")
    obj = fake.template("billing_portal.session")
    obj.update(id=fake.new_id("bps"), customer=params["customer"], return_url=params.get("return_url"),
               created=fake.now(), livemode=False, flow=None, configuration=fake.new_id("bpc"),
               url=f"{fake.url}/portal/{params['customer']}")
    fake.store(obj)
    return fake.public(obj)


def list_subscriptions(fake, params):
    items = fake.of_kind("subscription")
    if "customer" in params:
        items = [s for s in items if s["customer"] == params["customer"]]
    status = params.get("status")
    if status is None:
        items = [s for s in items if s["status"] != "canceled"]
    elif status != "all":
        items = [s for s in items if s["status"] == status]
    return fake.listing(items, "/v1/subscriptions", params)


def update_subscription(fake, ident, params):
    sub = fake.get(ident, "subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
    items = sub["items"]["data"]
    for change in params.get("items") or []:
        if change.get("deleted") == "true":
            sub["items"]["data"] = items = [i for i in items if i["id"] != change["id"]]
            continue
        price = fake.get(change["price"], "price") if change.get("price") else None
        existing = next((i for i in items if i["id"] == change.get("id")), None)
        if existing is not None and price is not None:
            existing["price"] = copy.deepcopy(price)
        elif existing is None and price is not None:
            metered = (price.get("recurring") or {}).get("usage_type") == "metered"
            items.append(fake.subscription_item(ident, price, None if metered else 1, items[0]["current_period_start"],
                                                items[0]["current_period_end"]))
    if "cancel_at_period_end" in params:
        sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
    if "metadata" in params:
        sub["metadata"] = {**sub["metadata"], **params["metadata"]}
    sub["_last_proration_behavior"] = params.get("proration_behavior")
    return fake.public(sub)


def cancel_subscription(fake, ident, params):
    sub = fake.get(ident, "subscription")
    sub.update(status="canceled", canceled_at=fake.now(), ended_at=fake.now())
    return fake.public(sub)


def preview_invoice(fake, params):
    sub = fake.get(params.get("subscription", ""), "subscription")
    details = params.get("subscription_details") or {}
    lines, total = [], 0
    for change in details.get("items") or []:
        if change.get("price"):
            price = fake.get(change["price"], "price")
            if (price.get("recurring") or {}).get("usage_type") != "metered":
                amount = price.get("unit_amount") or 0
                old = next((i for i in sub["items"]["data"] if i["id"] == change.get("id")), None)
                credit = -((old or {}).get("price", {}).get("unit_amount") or 0) // 2
                proration = {"type": "subscription_item_details", "invoice_item_details": None,
                             "subscription_item_details": {"invoice_item": None, "proration": True,
                                                           "proration_details": {"credited_items": None},
                                                           "subscription": sub["id"],
                                                           "subscription_item": change.get("id")}}
                lines += [{"description": "Unused time on the current plan", "amount": credit, "parent": proration},
                          {"description": f"Remaining time on {price.get('nickname') or price['id']}",
                           "amount": amount // 2, "parent": proration}]
                total += credit + amount // 2
    invoice = fake.template("invoice")
    invoice.update(id="upcoming_" + sub["id"], customer=sub["customer"], status="draft",
                   amount_due=max(total, 0), total=total, subtotal=total, currency="usd", livemode=False,
                   created=fake.now(), hosted_invoice_url=None, invoice_pdf=None, number=None,
                   lines={"object": "list", "has_more": False, "url": "/v1/invoices/upcoming/lines",
                          "data": [{"object": "line_item", "id": fake.new_id("il"), "currency": "usd",
                                    "quantity": 1, "livemode": False, "metadata": {}, **line} for line in lines]})
    return invoice


def list_invoice_lines(fake, invoice_id, params):
    """An invoice's lines a page at a time, in the invoice's order (``_lines`` holds them all when the invoice
    embeds only the first ones, as Stripe embeds ten)."""
    invoice = fake.get(invoice_id, "invoice")
    lines = invoice.get("_lines") or invoice["lines"]["data"]
    after = params.get("starting_after")
    if after:
        ids = [line["id"] for line in lines]
        lines = lines[ids.index(after) + 1:] if after in ids else []
    limit = int(params.get("limit", 10))
    return {"object": "list", "url": f"/v1/invoices/{invoice_id}/lines", "has_more": len(lines) > limit,
            "data": lines[:limit]}


def list_invoices(fake, params):
    items = fake.of_kind("invoice")
    if "customer" in params:
        items = [i for i in items if i["customer"] == params["customer"]]
    return fake.listing(items, "/v1/invoices", params)


def list_events(fake, params):
    items = list(fake.events)
    created = params.get("created") or {}
    if isinstance(created, dict) and "gte" in created:
        items = [e for e in items if e["created"] >= int(created["gte"])]
    if params.get("delivery_success") == "false":
        items = [e for e in items if e["pending_webhooks"] > 0]
    if "types" in params:
        items = [e for e in items if e["type"] in params["types"]]
    return fake.listing(items, "/v1/events", params)


ROUTES = {
    ("POST", "customers"): create_customer,
    ("GET", "customers/{id}"): lambda f, i, p: f.public(f.get(i, "customer")),
    ("POST", "customers/{id}"): lambda f, i, p: f.public(_update(f.get(i, "customer"), p, ("email", "name", "metadata"))),
    ("POST", "products"): create_product,
    ("GET", "products"): list_products,
    ("GET", "products/{id}"): lambda f, i, p: f.public(f.get(i, "product")),
    ("POST", "products/{id}"): lambda f, i, p: f.public(_update(f.get(i, "product"), p,
                                                                ("name", "description", "active", "metadata"))),
    ("POST", "prices"): lambda f, p: f.public(f.price(p)),
    ("GET", "prices"): list_prices,
    ("GET", "prices/{id}"): lambda f, i, p: f.public(f.get(i, "price")),
    ("POST", "prices/{id}"): update_price,
    ("POST", "billing/meters"): create_meter,
    ("GET", "billing/meters"): lambda f, p: f.listing(f.of_kind("billing.meter"), "/v1/billing/meters", p),
    ("GET", "billing/meters/{id}"): lambda f, i, p: f.public(f.get(i, "billing.meter")),
    ("GET", "billing/meters/{id}/event_summaries"): meter_event_summaries,
    ("POST", "billing/meters/{id}/deactivate"): set_meter_status("inactive"),
    ("POST", "billing/meters/{id}/reactivate"): set_meter_status("active"),
    ("POST", "billing/meter_events"): create_meter_event,
    ("POST", "checkout/sessions"): create_checkout_session,
    ("GET", "checkout/sessions/{id}"): lambda f, i, p: f.public(f.get(i, "checkout.session")),
    ("POST", "billing_portal/sessions"): create_portal_session,
    ("GET", "subscriptions"): list_subscriptions,
    ("GET", "subscriptions/{id}"): lambda f, i, p: f.public(f.get(i, "subscription")),
    ("POST", "subscriptions/{id}"): update_subscription,
    ("DELETE", "subscriptions/{id}"): cancel_subscription,
    ("POST", "invoices/create_preview"): preview_invoice,
    ("GET", "invoices"): list_invoices,
    ("GET", "invoices/{id}"): lambda f, i, p: f.public(f.get(i, "invoice")),
    ("GET", "invoices/{id}/lines"): list_invoice_lines,
    ("GET", "events"): list_events,
    ("GET", "events/{id}"): lambda f, i, p: next((e for e in f.events if e["id"] == i), None) or f.get(i),
}


# Paths of the pages Stripe hosts for customers (the URLs of Checkout and portal sessions).
PAGES = ("/checkout/", "/portal/")


def _handler(fake: FakeStripe):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: without TCP_NODELAY each answer waits
        # for the client's delayed ACK (40 ms).
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet
            pass

        def _serve(self, method):
            parts = urlsplit(self.path)
            if method == "GET" and parts.path.startswith(PAGES):
                return self._page(parts.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            pairs = parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True)
            status, answer, headers = fake.handle(method, parts.path, decode_form(pairs), self.headers)
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting (a delayed call past its timeout)

        def _page(self, path):
            """Stripe's hosted pages (Checkout, the Customer Portal) as a bare page a browser can land on."""
            kind, _, ident = path.strip("/").partition("/")
            data = (f"<!doctype html><html><head><title>Fake Stripe {kind}</title><link rel=\"icon\" href=\"data:,\"></head>"
                    f"<body><h1 id=\"fake-stripe-{kind}\">Fake Stripe {kind}</h1>"
                    f"<p id=\"fake-stripe-id\">{escape(ident)}</p></body></html>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a delay() longer than its timeout)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler
