"""Applying an event to an order: the one path the API, the shop webhooks, WhatsApp carts and the portal's
confirmation take.

``apply`` works in the caller's transaction on its connection: the order's row is locked (made, on its
unique tenant and reference, when there is none), the state machine decides (saas.orders.states), and an
event that moves the order writes the order's new state and data, the event (unique per order and state),
the notification of the state reached as ``pending`` (unique per order and event: saas.orders.notifications)
and, for a tenant with the inbox, a line in the customer's thread. An event that does not move the order
writes nothing. The notification is sent after the commit (``record_event`` does both), never inside it: a
crash between the two leaves it pending for the sweep, and its Idempotency-Key keeps a retry from sending
twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from saas.contacts import directory
from saas.contacts.models import SOURCE_API
from saas.database import insert_for
from saas.errors import NotFound
from saas.inbox import threads
from saas.inbox.consumers import with_inbox
from saas.messaging.models import PhoneNumber
from saas.orders import notifications
from saas.orders.fields import OrderData, wa_id_of
from saas.orders.models import Order, OrderEvent
from saas.orders.states import APPLIED, DUPLICATE, LINE, WHY, decide
from saas.timeutil import utcnow

ORDERS = Order.__table__
EVENTS = OrderEvent.__table__
FEATURE = "order_notifications"
LABELS = {"requested": "requested on WhatsApp", "created": "confirmed", "paid": "paid", "packed": "packed",
          "shipped": "shipped", "out_for_delivery": "out for delivery", "delivered": "delivered",
          "cancelled": "cancelled", "refunded": "refunded"}


@dataclass(frozen=True)
class Applied:
    """What an event did: its order, the outcome (saas.orders.states), the notification it wrote."""

    order_id: int
    event: str
    outcome: str
    notification_id: int | None = None

    @property
    def applied(self) -> bool:
        return self.outcome == APPLIED

    @property
    def why(self) -> str:
        return WHY[self.outcome]


def _locked(conn, tenant_id: int, reference: str):
    return conn.execute(select(ORDERS).where(ORDERS.c.tenant_id == tenant_id, ORDERS.c.reference == reference)
                        .with_for_update()).first()


def _contact_id(conn, tenant_id: int, wa_id: str, name: str | None) -> int | None:
    # Its savepoint, not the session, decides: closing it must never undo a contact made in a caller's savepoint
    # (the outbox delivers a failed batch's events again one at a time, each in a savepoint).
    session = Session(bind=conn, join_transaction_mode="rollback_only")
    try:
        with session.begin_nested():
            contact, _ = directory.find_or_create(session, tenant_id, wa_id=wa_id, name=name, source=SOURCE_API)
        return contact.id
    except IntegrityError:  # made a moment ago by another transaction
        found = directory.find(session, tenant_id, wa_id=wa_id)
        return found.id if found else None
    finally:
        session.close()


def default_number(conn, tenant_id: int, event: str) -> int | None:
    """The number an order without one is about: its event's mapping's, any mapping's, the tenant's first."""
    mapped = notifications.number_of_mappings(conn, tenant_id, event)
    if mapped is not None:
        return mapped
    return conn.execute(select(PhoneNumber.id).where(PhoneNumber.tenant_id == tenant_id,
                                                     PhoneNumber.disconnected_at.is_(None))
                        .order_by(PhoneNumber.id).limit(1)).scalar()


def _values(conn, tenant_id: int, order, data: OrderData, event: str, when: datetime, now: datetime) -> dict:
    """The order's columns an applied event writes: its state and the data it gave."""
    values = {"state": event, "state_at": when, "updated_at": now, **data.given()}
    wa_id = wa_id_of(data.phone) if data.phone else None
    if wa_id and (order is None or order.wa_id != wa_id):
        values["wa_id"] = wa_id
        values["contact_id"] = _contact_id(conn, tenant_id, wa_id, data.customer_name)
    if order is None or order.phone_number_id is None:
        values["phone_number_id"] = default_number(conn, tenant_id, event)
    return values


def apply(conn, tenant_id: int, reference: str, event: str, data: OrderData, *, source: str,
          when: datetime | None = None, phone_number_id: int | None = None,
          wa_message_id: str | None = None) -> Applied:
    """``event`` on the tenant's order ``reference`` in the caller's transaction (see the module)."""
    now = utcnow()
    when = when or now
    order = _locked(conn, tenant_id, reference)
    if order is None:
        values = _values(conn, tenant_id, None, data, event, when, now)
        if phone_number_id is not None:
            values["phone_number_id"] = phone_number_id
        values.setdefault("name", reference[:100])
        made = conn.execute(insert_for(conn, Order).on_conflict_do_nothing(
            index_elements=["tenant_id", "reference"]).values(
            tenant_id=tenant_id, reference=reference, source=source, items=values.pop("items", []),
            wa_message_id=wa_message_id, created_at=now, **values).returning(ORDERS.c.id)).scalar()
        order = _locked(conn, tenant_id, reference)
        if made is not None:
            return _reached(conn, order, event, when, source, data, now)
    recorded = set(conn.execute(select(EVENTS.c.state).where(
        EVENTS.c.tenant_id == tenant_id, EVENTS.c.order_id == order.id)).scalars())
    outcome = decide(order.state, recorded, event)
    if outcome != APPLIED:
        return Applied(order.id, event, outcome)
    conn.execute(update(ORDERS).where(ORDERS.c.id == order.id, ORDERS.c.tenant_id == tenant_id)
                 .values(**_values(conn, tenant_id, order, data, event, when, now)))
    return _reached(conn, _locked(conn, tenant_id, reference), event, when, source, data, now)


def _reached(conn, order, event: str, when: datetime, source: str, data: OrderData, now: datetime) -> Applied:
    """The state ``event`` reached by ``order`` (its row as it is now): the event, its notification, its line
    in the inbox."""
    written = conn.execute(insert_for(conn, OrderEvent).on_conflict_do_nothing(
        index_elements=["tenant_id", "order_id", "state"]).values(
        tenant_id=order.tenant_id, order_id=order.id, state=event, source=source, occurred_at=when,
        data={k: v for k, v in {**data.given(), **data.extra}.items() if k != "items"}, created_at=now)
        .returning(EVENTS.c.id)).scalar()
    if written is None:  # the unique (order, state) backs the row lock up: reached once, whatever raced
        return Applied(order.id, event, DUPLICATE)
    notification_id = notifications.prepare(conn, order, event, now)
    _inbox_line(conn, order, event, now)
    return Applied(order.id, event, APPLIED, notification_id)


def _inbox_line(conn, order, event: str, now: datetime) -> None:
    if order.wa_id is None or order.phone_number_id is None or not with_inbox(conn, {order.tenant_id}):
        return
    thread = threads.thread_for(conn, order.tenant_id, order.phone_number_id, order.wa_id,
                                name=order.customer_name, now=now)
    threads.log_event(conn, order.tenant_id, thread.id, f"Order {order.name}: {LABELS[event]}", now=now)


def record_event(session, service, tenant, reference: str, event: str, data: OrderData, *, source: str,
                 when: datetime | None = None, rights=None) -> Applied:
    """Apply ``event`` (one transaction, committed), then send the notification of the state it reached
    through ``service`` (the send service). Idempotent: an event repeated, or older than the order's state,
    changes nothing and sends nothing."""
    try:
        applied = apply(session.connection(), tenant.id, reference, event, data, source=source, when=when)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if applied.notification_id is not None:
        notifications.deliver(session, service, tenant, applied.notification_id, rights=rights)
    return applied


def order_by_reference(session, tenant, reference: str) -> Order:
    """The tenant's order ``reference``; NotFound for another tenant's or none."""
    order = session.scalar(select(Order).where(Order.tenant_id == tenant.id, Order.reference == reference))
    if order is None:
        raise NotFound("No such order.")
    return order


def confirm(session, service, tenant, order_id: int, *, rights=None) -> Applied:
    """A WhatsApp cart (``requested``) confirmed by the business: it becomes ``created`` and sends that
    state's notification. NotFound for another tenant's order."""
    order = session.scalar(select(Order).where(Order.tenant_id == tenant.id, Order.id == order_id))
    if order is None:
        raise NotFound("No such order.")
    reference = order.reference
    session.rollback()
    return record_event(session, service, tenant, reference, LINE[1], OrderData(), source="portal", rights=rights)
