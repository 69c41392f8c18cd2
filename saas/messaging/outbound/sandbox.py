"""The sandbox's delivery receipts, run as a background job after the response."""
from __future__ import annotations

from datetime import timedelta

from saas.extensions import db
from saas.messaging.tenant_webhooks import forwarding
from saas.messaging.inbound.statuses import StatusUpdate, apply_statuses
from saas.timeutil import utcnow

WALK = ("sent", "delivered", "read")


def walk_statuses(tenant_id: int, wa_message_id: str) -> None:
    """Mark a sandbox message sent, delivered and read, as a real handset would."""
    walk_many([(tenant_id, wa_message_id)])


def walk_many(messages: list[tuple[int, str]]) -> None:
    """The walk for many messages in one transaction. Commits.

    Tenants that forward to their own webhook get each status in WhatsApp's
    shape, recorded in the same transaction.
    """
    now = utcnow()
    updates = [StatusUpdate(tenant_id, wamid, status, now + timedelta(milliseconds=offset))
               for tenant_id, wamid in messages
               for offset, status in enumerate(WALK)]
    session = db.session
    try:
        conn = session.connection()
        apply_statuses(conn, updates)
        events = forwarding.sandbox_status_events(
            conn, [(u.tenant_id, u.wa_message_id, u.status, u.at) for u in updates])
        if events:
            forwarding.record_events(conn, events, now)
    except BaseException:
        session.rollback()
        raise
    session.commit()


walk_statuses.batch = walk_many
