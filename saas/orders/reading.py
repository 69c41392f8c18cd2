"""Reading orders: the tenant's list, newest change first, and one order's timeline (every state it
reached and every notification with its message's delivery status, in time order)."""
from __future__ import annotations

from sqlalchemy import select

from saas.messaging.models import Message
from saas.orders.models import Order, OrderEvent, OrderNotification
from saas.timeutil import iso


def list_orders(session, tenant, *, limit: int = 25, before: int | None = None,
                state: str | None = None) -> list[Order]:
    """The tenant's orders by id, newest first (``before``: an id, for the next page)."""
    query = select(Order).where(Order.tenant_id == tenant.id)
    if before is not None:
        query = query.where(Order.id < before)
    if state is not None:
        query = query.where(Order.state == state)
    return list(session.scalars(query.order_by(Order.id.desc()).limit(limit)))


def get(session, tenant, order_id: int) -> Order | None:
    return session.scalar(select(Order).where(Order.tenant_id == tenant.id, Order.id == order_id))


def timeline(session, tenant, order: Order) -> list[dict]:
    """The order's events and notifications, oldest first; a notification carries its message's status."""
    events = session.scalars(select(OrderEvent).where(OrderEvent.tenant_id == tenant.id,
                                                      OrderEvent.order_id == order.id))
    entries = [{"kind": "event", "event": e.state, "source": e.source, "at": e.occurred_at, "data": e.data or {}}
               for e in events]
    reached = {entry["event"]: entry["at"] for entry in entries}
    rows = session.execute(
        select(OrderNotification, Message.status, Message.wa_message_id, Message.error_code)
        .outerjoin(Message, (Message.id == OrderNotification.message_id) & (Message.tenant_id == tenant.id))
        .where(OrderNotification.tenant_id == tenant.id, OrderNotification.order_id == order.id)).all()
    for notification, status, wamid, code in rows:
        entries.append({"kind": "message", "event": notification.event, "status": notification.status,
                        "message_status": status, "message_id": notification.message_id,
                        "wa_message_id": wamid, "template": notification.template_name,
                        "language": notification.template_language,
                        "error": ({"code": notification.error_code or code, "title": notification.error_title}
                                  if notification.error_title or notification.error_code else None),
                        "at": notification.sent_at or notification.created_at})
    # Each message right after the state that sent it, states in the order they happened.
    entries.sort(key=lambda e: (reached.get(e["event"], e["at"]), e["kind"] == "message"))
    return entries


def timeline_json(entries: list[dict]) -> list[dict]:
    return [{**entry, "at": iso(entry["at"])} for entry in entries]
