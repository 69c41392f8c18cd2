"""Orders' consumer of messaging's domain events (found by saas.events.discover): a customer's WhatsApp
cart (an inbound ``order`` message) becomes an order in ``requested``, with its items, for tenants whose
plan has order notifications, and is forwarded to the tenant's webhook as an ``order.requested`` event.

Idempotent: the cart's order is named by its message (``wa-`` and a digest of its id), so an event handed
over again finds the order there and changes nothing; the forwarded delivery is unique per endpoint and
event key. Runs in the delivering transaction, with no request or app context.
"""
from __future__ import annotations

import hashlib
from decimal import Decimal

from sqlalchemy import select

from saas import events
from saas.cache import SnapshotCache
from saas.billing.models import Plan, Subscription
from saas.database import insert_for
from saas.messaging.domain_events import MESSAGE_RECEIVED
from saas.messaging.models import DELIVERY_PENDING, WebhookDelivery, WebhookEndpoint
from saas.orders.fields import OrderData, amount, bounded, item
from saas.orders.models import Order
from saas.orders.services import FEATURE, apply
from saas.orders.states import APPLIED, REQUESTED
from saas.timeutil import iso, utcnow

WEBHOOKS = "webhooks"
# Whether a tenant's plan has order notifications, by tenant id (the access caches' default bound).
_HAS_ORDERS = SnapshotCache(5.0)


def _features(conn, tenant_ids) -> dict[int, set]:
    rows = conn.execute(select(Subscription.tenant_id, Plan.features).join(Plan, Plan.id == Subscription.plan_id)
                        .where(Subscription.tenant_id.in_(sorted(tenant_ids)))).all()
    return {tenant_id: set(features or ()) for tenant_id, features in rows}


def with_orders(conn, tenant_ids) -> set[int]:
    """The tenants among ``tenant_ids`` subscribed to a plan with order notifications: read on ``conn`` (a
    consumer may run with no app context) through a snapshot cache, as saas.inbox.consumers.with_inbox is
    (every inbound message asks it)."""
    answers = {tenant_id: _HAS_ORDERS.peek(tenant_id) for tenant_id in tenant_ids}
    unknown = sorted(tenant_id for tenant_id, answer in answers.items() if answer is None)
    if unknown:
        features = _features(conn, unknown)
        for tenant_id in unknown:
            answers[tenant_id] = FEATURE in features.get(tenant_id, set())
            _HAS_ORDERS.put(tenant_id, answers[tenant_id])
    return {tenant_id for tenant_id, answer in answers.items() if answer}


def reference_of(wa_message_id: str) -> str:
    return "wa-" + hashlib.sha256(wa_message_id.encode()).hexdigest()[:20]


def cart(message: dict) -> OrderData | None:
    """A cart's order data (items, total, currency), or None when the message is no cart."""
    body = message.get("order") if message.get("type") == "order" else None
    lines = body.get("product_items") if isinstance(body, dict) else None
    if not isinstance(lines, list) or not lines:
        return None
    items, total, currencies = [], Decimal(0), set()
    for line in lines[:100]:
        if not isinstance(line, dict):
            continue
        found = item(line.get("product_retailer_id"), line.get("quantity"), line.get("item_price"),
                     line.get("product_retailer_id"))
        if found is None:
            continue
        items.append(found)
        total += Decimal(found["price"] or 0) * found["quantity"]
        if isinstance(line.get("currency"), str):
            currencies.add(line["currency"][:3].upper())
    if not items:
        return None
    currency = currencies.pop() if len(currencies) == 1 else None
    return OrderData(items=items, total=amount(total), currency=currency,
                     extra={"catalog_id": bounded(body.get("catalog_id"), 100), "text": bounded(body.get("text"), 500)})


def _forward(conn, order, now) -> None:
    """The order's ``order.requested`` event to the tenant's active endpoint, if it has one and its plan
    forwards (``webhooks``)."""
    if WEBHOOKS not in _features(conn, {order.tenant_id}).get(order.tenant_id, set()):
        return
    endpoint = conn.execute(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant_id == order.tenant_id,
                                                             WebhookEndpoint.active.is_(True))).scalar()
    if endpoint is None:
        return
    payload = {"object": "order", "event": "order.requested", "order": {
        "id": order.id, "reference": order.reference, "state": order.state, "wa_id": order.wa_id,
        "customer_name": order.customer_name, "items": order.items, "total": order.total,
        "currency": order.currency, "wa_message_id": order.wa_message_id, "created_at": iso(order.created_at)}}
    conn.execute(insert_for(conn, WebhookDelivery).on_conflict_do_nothing(
        index_elements=["tenant_id", "endpoint_id", "event_key"]).values(
        tenant_id=order.tenant_id, endpoint_id=endpoint, event_type="order.requested",
        event_key=f"order:{order.id}:requested", sequence_key=f"order:{order.id}",
        wa_message_id=order.wa_message_id, payload=payload, state=DELIVERY_PENDING, attempts=0,
        next_attempt_at=now, created_at=now))


def take(conn, batch) -> int:
    """The consumer: each cart of a tenant with order notifications becomes a requested order."""
    served = with_orders(conn, {event.tenant_id for event in batch})
    made = 0
    for event in batch:
        payload = event.payload
        message = payload.get("object") or {}
        data = cart(message) if event.tenant_id in served else None
        if data is None:
            continue
        contact = payload.get("contact") if isinstance(payload.get("contact"), dict) else {}
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        data.phone, data.customer_name = payload["from"], bounded(profile.get("name"), 200)
        wamid = payload["wa_message_id"]
        applied = apply(conn, event.tenant_id, reference_of(wamid), REQUESTED, data, source="whatsapp",
                        phone_number_id=payload["number"]["id"], wa_message_id=wamid[:128])
        if applied.outcome == APPLIED:
            made += 1
            order = conn.execute(select(Order.__table__).where(Order.id == applied.order_id)).first()
            _forward(conn, order, utcnow())
    return made


events.subscribe(MESSAGE_RECEIVED, take, name="orders.carts", serves=with_orders)
