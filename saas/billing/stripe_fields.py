"""What we take from Stripe into our columns and queries: each value bounded, or refused whole.

PostgreSQL refuses a NUL (and a lone surrogate) in any text and a string longer than its
column; SQLite takes both, so a check left to the database fails on one backend only, and
fails after part of the work is done. Python's JSON parser gives up about a thousand levels
deep. So a Stripe object is checked here before anything of it is written: a webhook body
that fails is answered 400 and recorded nowhere; an object read from the API that fails is
an error of that read.
"""
from __future__ import annotations

import re

# Stripe's deepest objects (an invoice's line items and their proration details) nest about
# ten levels; anything this deep is not Stripe's.
MAX_DEPTH = 64
# Stripe's ids: at most 255 visible ASCII characters (ours hold them in String(255)).
STRIPE_ID = re.compile(r"[!-~]{1,255}")
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.]{1,100}")  # StripeEvent.type is String(100)
# The latest moment a datetime (and so a DateTime column) can hold: 9999-12-31 23:59:59 UTC.
LAST_TIMESTAMP = 253_402_300_799
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnstorableStripeObject(ValueError):
    """A Stripe object with a value our columns cannot hold (or that no Stripe object has)."""


def storable_text(text: str, length: int) -> str:
    """``text`` without what PostgreSQL refuses, cut to ``length``: for sentences we write (outcomes, errors)."""
    return UNSTORABLE.sub("\ufffd", text)[:length]


def payload_problem(payload) -> str | None:
    """Why a parsed JSON document cannot be stored as it is, or None.

    Walked without recursion, so no depth of nesting can exhaust the stack.
    """
    stack = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            for key, value in node.items():
                if UNSTORABLE.search(key):
                    return "a key holds a NUL or an unpaired surrogate"
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((value, depth + 1) for value in node)
        elif isinstance(node, str) and UNSTORABLE.search(node):
            return "a string holds a NUL or an unpaired surrogate"
    return None


def is_stripe_id(value) -> bool:
    return isinstance(value, str) and STRIPE_ID.fullmatch(value) is not None


def is_timestamp(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LAST_TIMESTAMP


def reference(value) -> str | None:
    """A Stripe reference (an id, or the expanded object carrying it) as its id; None when absent.

    Raises UnstorableStripeObject for anything else.
    """
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or is_stripe_id(value):
        return value
    raise UnstorableStripeObject("a reference that is not a Stripe id")


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise UnstorableStripeObject(problem)


def check_subscription(obj) -> None:
    """Raises UnstorableStripeObject unless every field ``apply_stripe_subscription`` stores fits its column."""
    _require(isinstance(obj, dict), "the subscription is not an object")
    _require(is_stripe_id(obj.get("id")), "the subscription's id is not a Stripe id")
    reference(obj.get("customer"))
    _require(isinstance(obj.get("status"), str), "its status is not a string")
    _require(obj.get("trial_end") is None or is_timestamp(obj["trial_end"]), "its trial_end is not a timestamp")
    _require(isinstance(obj.get("metadata") or {}, dict), "its metadata is not an object")
    items = obj.get("items") or {}
    _require(isinstance(items, dict) and isinstance(items.get("data") or [], list), "its items are not a list")
    for item in items.get("data") or []:
        _require(isinstance(item, dict) and is_stripe_id(item.get("id")), "an item's id is not a Stripe id")
        price = item.get("price")
        _require(isinstance(price, dict) and is_stripe_id(price.get("id")), "an item's price is not a Stripe price")
        _require(isinstance(price.get("recurring") or {}, dict), "a price's recurring is not an object")
        _require(isinstance(price.get("metadata") or {}, dict), "a price's metadata is not an object")
        _require(price.get("lookup_key") is None or isinstance(price["lookup_key"], str),
                 "a price's lookup key is not a string")
        for name in ("current_period_start", "current_period_end"):
            _require(item.get(name) is None or is_timestamp(item[name]), f"an item's {name} is not a timestamp")


def _check_checkout_session(session: dict) -> None:
    reference(session.get("customer"))
    reference(session.get("subscription"))
    _require(isinstance(session.get("metadata") or {}, dict), "its metadata is not an object")


def _check_invoice(invoice: dict) -> None:
    reference(invoice.get("customer"))
    reference(invoice.get("subscription"))
    parent = invoice.get("parent") or {}
    _require(isinstance(parent, dict), "its parent is not an object")
    details = parent.get("subscription_details") or {}
    _require(isinstance(details, dict), "its subscription details are not an object")
    reference(details.get("subscription"))
    _require(isinstance(details.get("metadata") or {}, dict), "its metadata is not an object")


def event_problem(event) -> str | None:
    """Why a parsed webhook body is not a Stripe event we can record and apply, or None."""
    if not isinstance(event, dict):
        return "not an object"
    problem = payload_problem(event)
    if problem:
        return problem
    data = event.get("data")
    if not (event.get("object") == "event" and isinstance(data, dict) and isinstance(data.get("object"), dict)):
        return "not an event"
    if not is_stripe_id(event.get("id")):
        return "its id is not a Stripe id"
    if not (isinstance(event.get("type"), str) and EVENT_TYPE.fullmatch(event["type"])):
        return "its type is not an event type"
    if not is_timestamp(event.get("created")):
        return "its created is not a timestamp"
    obj, kind = data["object"], event["type"]
    if obj.get("id") is not None and not is_stripe_id(obj["id"]):
        return "its object's id is not a Stripe id"
    try:
        if kind.startswith("customer.subscription."):
            check_subscription(obj)
        elif kind.startswith("checkout.session."):
            _check_checkout_session(obj)
        elif kind.startswith("invoice."):
            _check_invoice(obj)
    except UnstorableStripeObject as exc:
        return str(exc)
    return None
