"""The sandbox's delivery receipts, run as a background job after the response.

Each receipt is applied like a real status and publishes the same domain
event (``message.status_changed``, saas.messaging.domain_events), its status
object written as WhatsApp would write it: consumers, forwarding to the
tenant's webhook among them, cannot tell a sandbox number from a live one.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from saas import events
from saas.extensions import db
from saas.messaging import domain_events as happened
from saas.messaging.domain_events import NumberRef
from saas.messaging.inbound.statuses import StatusUpdate, apply_statuses
from saas.messaging.models import Conversation, Message, PhoneNumber
from saas.timeutil import utcnow

WALK = ("sent", "delivered", "read")
EPOCH = datetime(1970, 1, 1)


def walk_statuses(tenant_id: int, wa_message_id: str) -> None:
    """Mark a sandbox message sent, delivered and read, as a real handset would."""
    walk_many([(tenant_id, wa_message_id)])


def walk_many(messages: list[tuple[int, str]]) -> None:
    """The walk for many messages in one transaction, with its status events. Commits, then delivers them."""
    now = utcnow()
    updates = [StatusUpdate(tenant_id, wamid, status, now + timedelta(milliseconds=offset))
               for tenant_id, wamid in messages
               for offset, status in enumerate(WALK)]
    session = db.session
    try:
        conn = session.connection()
        apply_statuses(conn, updates)
        wanted = events.audience(conn, happened.STATUS_CHANGED, {tenant_id for tenant_id, _ in messages})
        events.publish(conn, status_events(conn, [(u.tenant_id, u.wa_message_id, u.status, u.at)
                                                  for u in updates if u.tenant_id in wanted]))
        events.commit(session)
    except BaseException:
        session.rollback()
        raise


walk_statuses.batch = walk_many


def _seconds(at: datetime) -> str:
    """A naive-UTC moment as WhatsApp writes timestamps: whole seconds since the epoch, as a string."""
    return str(int((at - EPOCH).total_seconds()))


def status_events(conn, walked: list[tuple[int, str, str, datetime]]) -> list[events.Event]:
    """Status events for walked sandbox messages: (tenant id, wamid, status, at) each, in that order.

    One query finds the messages; a sandbox message is billed by us, never by
    Meta: its pricing says ``billable: false``.
    """
    if not walked:
        return []
    rows = conn.execute(
        select(Message.tenant_id, Message.wa_message_id, Message.wa_id, Message.conversation_id,
               Conversation.category, Conversation.expires_at, PhoneNumber.id, PhoneNumber.phone_number_id,
               PhoneNumber.display_number, PhoneNumber.waba_id)
        .join(PhoneNumber, PhoneNumber.id == Message.phone_number_id)
        .outerjoin(Conversation, (Conversation.id == Message.conversation_id)
                   & (Conversation.tenant_id == Message.tenant_id))
        .where(Message.wa_message_id.in_(sorted({w for _, w, _, _ in walked})))).all()
    found = {(row.tenant_id, row.wa_message_id): row for row in rows}
    published = []
    for tenant_id, wamid, status, at in walked:
        row = found.get((tenant_id, wamid))
        if row is None:
            continue
        item = {"id": wamid, "status": status, "timestamp": _seconds(at), "recipient_id": row.wa_id}
        if status in ("sent", "delivered") and row.category:
            conversation = {"id": f"sandbox-{row.conversation_id}", "origin": {"type": row.category}}
            if status == "sent" and row.expires_at is not None:
                conversation["expiration_timestamp"] = _seconds(row.expires_at)
            item["conversation"] = conversation
            item["pricing"] = {"billable": False, "pricing_model": "PMP", "category": row.category,
                               "type": "free_customer_service" if row.category == "service" else "regular"}
        number = NumberRef(row.id, tenant_id, row.phone_number_id, row.display_number, row.waba_id)
        published.append(happened.status_changed(number, wamid, item))
    return published
