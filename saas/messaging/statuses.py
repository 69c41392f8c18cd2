"""Delivery statuses, from WhatsApp's webhooks or the sandbox: one code path for both."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import STATUS_RANK, Message

TIMESTAMP_FIELD = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}


def apply_status(tenant_id: int, wa_message_id: str, status: str, at: datetime,
                 *, error_code: int | None = None, error_title: str | None = None) -> bool:
    """Move a message to ``status`` unless it is already further along.

    Idempotent and order-proof: a repeated or late status changes nothing.
    Returns whether the message changed. Commits.
    """
    return apply_statuses(tenant_id, wa_message_id, [(status, at)],
                          error_code=error_code, error_title=error_title)


def apply_statuses(tenant_id: int, wa_message_id: str, updates: list[tuple[str, datetime]],
                   *, error_code: int | None = None, error_title: str | None = None) -> bool:
    """Apply several statuses of one message in one transaction (see apply_status)."""
    updates = [(status, at) for status, at in updates if status in TIMESTAMP_FIELD]
    if not updates:
        return False
    message = db.session.scalar(
        select(Message).where(Message.tenant_id == tenant_id, Message.wa_message_id == wa_message_id)
        .with_for_update(of=Message, key_share=True))
    if message is None:
        db.session.rollback()
        return False
    changed = False
    for status, at in updates:
        changed = _apply(message, status, at, error_code, error_title) or changed
    db.session.commit()
    return changed


def _apply(message: Message, status: str, at: datetime, error_code, error_title) -> bool:
    # 'failed' after 'delivered' or 'read' is stale news; it never wins over them.
    if status == "failed" and message.status in ("delivered", "read"):
        return False
    changed = False
    field = TIMESTAMP_FIELD[status]
    if getattr(message, field) is None:
        setattr(message, field, at)
        changed = True
    if STATUS_RANK[status] > STATUS_RANK.get(message.status, 0):
        message.status = status
        if status == "failed":
            message.error_code = error_code
            message.error_title = error_title
        changed = True
    return changed
