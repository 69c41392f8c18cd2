"""Delivery statuses, from WhatsApp's webhooks or the sandbox: one code path for both.

A status never moves a message backwards, a timestamp is set once, and a
``failed`` that arrives after ``delivered`` or ``read`` is stale news. Each
rule is part of the UPDATE itself, so statuses apply in batches, in any
order, any number of times, with the same result.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, or_, update

from saas.extensions import db
from saas.messaging.models import STATUS_RANK, Message

TIMESTAMP_FIELD = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}


@dataclass(frozen=True)
class StatusUpdate:
    tenant_id: int
    wa_message_id: str
    status: str
    at: datetime
    error_code: int | None = None
    error_title: str | None = None


def _rank():
    return case(STATUS_RANK, value=Message.status, else_=0)


def _build(status: str):
    field = getattr(Message, TIMESTAMP_FIELD[status])
    advances = _rank() < STATUS_RANK[status]
    values = {TIMESTAMP_FIELD[status]: func.coalesce(field, bindparam("at")),
              "status": case((advances, status), else_=Message.status)}
    changes = or_(field.is_(None), advances)
    if status == "failed":
        values["error_code"] = case((advances, bindparam("error_code")), else_=Message.error_code)
        values["error_title"] = case((advances, bindparam("error_title")), else_=Message.error_title)
        changes = and_(changes, Message.status.not_in(("delivered", "read")))
    return (update(Message)
            .where(Message.tenant_id == bindparam("tenant"), Message.wa_message_id == bindparam("wamid"), changes)
            .values(**values)
            .execution_options(synchronize_session=False))


# Built once per status: building an UPDATE costs more than running it.
_STATEMENTS = {status: _build(status) for status in TIMESTAMP_FIELD}


def apply_status_batch(updates: list[StatusUpdate]) -> int:
    """Apply many statuses of many messages in one transaction. Commits.

    Idempotent and order-proof. Returns how many (message, status) pairs
    changed something; statuses for unknown messages, or another tenant's,
    change nothing.
    """
    changed = 0
    conn = db.session.connection()
    try:
        for status in TIMESTAMP_FIELD:  # the order statuses happen in
            rows = [{"tenant": u.tenant_id, "wamid": u.wa_message_id, "at": u.at,
                     "error_code": u.error_code, "error_title": u.error_title}
                    for u in updates if u.status == status]
            if not rows:
                continue
            # With many rows, rowcount is the sum over them on both drivers used here.
            changed += conn.execute(_STATEMENTS[status], rows).rowcount
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    return changed


def apply_status(tenant_id: int, wa_message_id: str, status: str, at: datetime,
                 *, error_code: int | None = None, error_title: str | None = None) -> bool:
    """Move one message to ``status`` unless it is already further along; whether it changed. Commits."""
    if status not in TIMESTAMP_FIELD:
        return False
    return apply_status_batch([StatusUpdate(tenant_id, wa_message_id, status, at, error_code, error_title)]) > 0
