"""Broadcasts' consumer of messaging's domain events (found by saas.events.discover): WhatsApp's
statuses move each recipient's outcome, never backwards.

A status names its recipient by the ``biz_opaque_callback_data`` the engine sent
("broadcast:<recipient id>", after our message id: saas.messaging.outbound.callback_data), so a
send whose answer was lost (``unknown``, or still ``sending`` when its worker died) is settled by
its first status. A failed status with 131050 skips the recipient (opted out); with 131049, a
broadcast that opted in tries it once more a day later.

``send.settled`` is not taken: every send settles one, and a recipient whose answer was lost is
settled by its status anyway (a send's accept found late comes with its statuses).
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, distinct, or_, select, update

from saas import events
from saas.broadcasts.engine import recipient_named
from saas.broadcasts.models import (
    COMPLETED, DELIVERED, FAILED, QUEUED, RANK, READ, RUNNING, SENDING, SENT, SKIPPED, UNKNOWN, Broadcast,
    BroadcastRecipient,
)
from saas.broadcasts.outcomes import PER_USER_LIMIT, PER_USER_WAIT, STOPPED_MARKETING
from saas.messaging.domain_events import STATUS_CHANGED
from saas.messaging.outbound import callback_data
from saas.timeutil import utcnow

RECIPIENTS = BroadcastRecipient.__table__
BROADCASTS = Broadcast.__table__
# Statuses arrive for days after a broadcast ends (read receipts): its tenant is served that long.
SERVED_FOR = timedelta(days=30)
STAMP = {SENT: "sent_at", DELIVERED: "delivered_at", READ: "read_at"}


def serves(conn, tenant_ids) -> set[int]:
    """The tenants with a broadcast under way or finished lately (the others' events are not written)."""
    since = utcnow() - SERVED_FOR
    rows = conn.execute(select(distinct(BROADCASTS.c.tenant_id)).where(
        BROADCASTS.c.tenant_id.in_(list(tenant_ids)),
        or_(BROADCASTS.c.finished_at.is_(None), BROADCASTS.c.finished_at > since)))
    return {row[0] for row in rows}


def on_status(conn, batch: list) -> int:
    """message.status_changed: the recipient named by the status's callback data takes its status."""
    moved = 0
    for event in batch:
        status = event.payload.get("object") or {}
        mark = callback_data.read(status.get(callback_data.FIELD))
        recipient_id = recipient_named(mark.tenant_value) if mark is not None else None
        if recipient_id is None:
            continue
        where = and_(RECIPIENTS.c.id == recipient_id, RECIPIENTS.c.tenant_id == event.tenant_id)
        ids = {"message_id": mark.message_id, "wa_message_id": (event.payload.get("wa_message_id") or "")[:128] or None}
        name = event.payload.get("status")
        if name in STAMP:
            moved += _moved_forward(conn, where, name, ids)
        elif name == "failed":
            moved += _failed(conn, where, status, ids)
    return moved


def _moved_forward(conn, where, name: str, ids: dict) -> int:
    below = [status for status, rank in RANK.items() if rank < RANK[name] and status != QUEUED]
    now = utcnow()
    return conn.execute(update(RECIPIENTS).where(where, RECIPIENTS.c.status.in_(below)).values(
        status=name, updated_at=now, error_code=None, error_title=None, **{STAMP[name]: now},
        message_id=ids["message_id"], wa_message_id=ids["wa_message_id"])).rowcount


def _failed(conn, where, status: dict, ids: dict) -> int:
    errors = status.get("errors") or [{}]
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = first.get("code") if isinstance(first.get("code"), int) else None
    title = str(first.get("title") or first.get("message") or "")[:300] or None
    now = utcnow()
    open_ = where & RECIPIENTS.c.status.in_((SENDING, UNKNOWN, SENT, DELIVERED))
    if code == STOPPED_MARKETING:
        return conn.execute(update(RECIPIENTS).where(open_).values(
            status=SKIPPED, skip_reason="opted_out", error_code=str(code), error_title=title, updated_at=now,
            **ids)).rowcount
    if code == PER_USER_LIMIT and _retry_later(conn, where, now):
        return 1
    return conn.execute(update(RECIPIENTS).where(open_).values(
        status=FAILED, error_code=str(code) if code is not None else None, error_title=title, failed_at=now,
        updated_at=now, **ids)).rowcount


def _retry_later(conn, where, now) -> bool:
    """131049 for a broadcast that retries it: the recipient is queued for a day later, once (its
    broadcast running again if it had completed)."""
    row = conn.execute(select(RECIPIENTS.c.broadcast_id, RECIPIENTS.c.error_code, BROADCASTS.c.retry_per_user_limit)
                       .join(BROADCASTS, BROADCASTS.c.id == RECIPIENTS.c.broadcast_id)
                       .where(where, RECIPIENTS.c.status.in_((SENDING, UNKNOWN, SENT, DELIVERED)))).first()
    if row is None or not row.retry_per_user_limit or row.error_code == str(PER_USER_LIMIT):
        return False
    conn.execute(update(RECIPIENTS).where(where).values(
        status=QUEUED, error_code=str(PER_USER_LIMIT), error_title="Meta's per-user marketing limit; tried again "
        "a day later.", next_attempt_at=now + PER_USER_WAIT, updated_at=now))
    conn.execute(update(BROADCASTS).where(BROADCASTS.c.id == row.broadcast_id, BROADCASTS.c.status == COMPLETED)
                 .values(status=RUNNING, finished_at=None, updated_at=now))
    return True


events.subscribe(STATUS_CHANGED, on_status, name="broadcasts.statuses", serves=serves)
