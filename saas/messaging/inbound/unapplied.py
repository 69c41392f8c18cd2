"""Items of WhatsApp's notifications that could not be applied: kept with why, tried again, listed.

An item (a status, an inbound message, a change of another field) that a
handler refuses for what it holds, or whose applying the database refused,
is kept as an UnappliedItem in the transaction that applies the rest of its
notification. One refused for its content is tried again only when an
operator asks (``flask whatsapp retry-unapplied``, after a fix); one that
raised is tried again by the sweep, waiting longer each time, up to
MAX_TRIES. Nothing is dropped: ``flask whatsapp unapplied`` lists them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from saas import events
from saas.extensions import db
from saas.messaging.inbound.objects import ident, text
from saas.messaging.models import UnappliedItem
from saas.messaging.inbound.notification_items import Note, Unapplied, apply_changes, error_text, parse
from saas.database import insert_for
from saas.timeutil import utcnow

MAX_TRIES = 10
# Doubling from here: the tenth try comes about eight and a half hours after the first.
FIRST_WAIT = timedelta(minutes=1)


def next_try(attempts: int, now: datetime) -> datetime | None:
    """When an item that raised on its ``attempts``-th try is tried again; None once it has had them all."""
    if attempts >= MAX_TRIES:
        return None
    return now + FIRST_WAIT * 2 ** (attempts - 1)


_KEEP: dict[str, object] = {}


def _keep_statement(conn):
    stmt = _KEEP.get(conn.dialect.name)
    if stmt is None:
        stmt = _KEEP[conn.dialect.name] = insert_for(conn, UnappliedItem).on_conflict_do_nothing(
            index_elements=["notification_id", "location"])
    return stmt


def keep(conn, notification_id: int, received_at: datetime, items: list[Unapplied], now: datetime) -> None:
    """Keep a notification's unapplied items, in the caller's transaction. Idempotent per (notification, place)."""
    if not items:
        return
    conn.execute(_keep_statement(conn), [
        # Every value bounded again: what keeps a bad item must never fail on it.
        {"notification_id": notification_id, "location": text(item.location, 120) or "", "field": text(item.field, 80)
         or "", "wa_message_id": ident(item.wa_message_id, 128), "body": item.body_text(),
         "error": text(item.error, 1000) or "refused", "attempts": 1,
         "received_at": received_at, "failed_at": now, "next_try_at": next_try(1, now) if item.retry else None,
         "applied_at": None}
        for item in items])


@dataclass
class Retried:
    applied: int = 0
    kept: int = 0


def retry_due(*, now: datetime | None = None, limit: int = 100) -> Retried:
    """Try again the kept items whose next try is due (the sweep). Commits each."""
    now = now or utcnow()
    ids = list(db.session.scalars(
        select(UnappliedItem.id).where(UnappliedItem.applied_at.is_(None), UnappliedItem.next_try_at <= now)
        .order_by(UnappliedItem.next_try_at).limit(limit)))
    db.session.rollback()
    return retry(ids, now=now)


def retry(ids, *, now: datetime | None = None) -> Retried:
    """Apply the kept items ``ids`` again, each alone in its own transaction; those applied are marked so.

    Safe anywhere at once (an item is locked while it is tried) and
    idempotent (applying is). One still refused or failing keeps its new
    error; one that raised is due again later, until MAX_TRIES.
    """
    result = Retried()
    for item_id in ids:
        applied = _retry_one(item_id, now or utcnow())
        if applied is True:
            result.applied += 1
        elif applied is False:
            result.kept += 1
    return result


def _retry_one(item_id: int, now: datetime) -> bool | None:
    session = db.session
    try:
        row = session.scalar(select(UnappliedItem).where(UnappliedItem.id == item_id,
                                                         UnappliedItem.applied_at.is_(None))
                             .with_for_update(skip_locked=True))
        if row is None:
            session.rollback()
            return None
        note, error, raised = Note(), None, False
        try:
            with session.begin_nested():
                apply_changes(session, [(note, change) for change in parse(row.body, note)], now)
        except Exception as exc:
            error, raised = error_text(exc), True
        else:
            error = note.unapplied[0].error if note.unapplied else None
        row.attempts += 1
        if error is None:
            row.applied_at, row.next_try_at = now, None
        else:
            row.error, row.failed_at = error, now
            row.next_try_at = next_try(row.attempts, now) if raised else None
        events.commit(session)
    except BaseException:
        session.rollback()
        raise
    return error is None


def open_items(*, limit: int = 100) -> list[UnappliedItem]:
    """The items not applied yet, the latest failure first (for operators)."""
    return list(db.session.scalars(select(UnappliedItem).where(UnappliedItem.applied_at.is_(None))
                                   .order_by(UnappliedItem.failed_at.desc(), UnappliedItem.id.desc()).limit(limit)))


def open_ids() -> list[int]:
    return list(db.session.scalars(select(UnappliedItem.id).where(UnappliedItem.applied_at.is_(None))
                                   .order_by(UnappliedItem.id)))


def prune(*, keep_for: timedelta, now: datetime | None = None, limit: int = 5000) -> int:
    """Delete items applied longer than ``keep_for`` ago; those never applied stay. Commits; returns how many."""
    cutoff = (now or utcnow()) - keep_for
    ids = select(UnappliedItem.id).where(UnappliedItem.applied_at < cutoff).limit(limit)
    deleted = db.session.execute(delete(UnappliedItem).where(UnappliedItem.id.in_(ids.scalar_subquery()))).rowcount
    db.session.commit()
    return deleted
