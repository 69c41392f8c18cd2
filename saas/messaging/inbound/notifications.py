"""WhatsApp's webhook notifications, applied after the request that stored them.

``saas.messaging.inbound.intake.receive`` checks ``X-Hub-Signature-256`` over the raw
body with the app secret and stores the body; the request is answered at once. A background job
(``apply_notification``, batched) applies what was stored; the sweep
(``apply_pending``) applies whatever a crash left unapplied. Applying is
idempotent, so a notification WhatsApp repeats, or one applied twice by a job
and the sweep, changes nothing the second time.

Each change of a notification is dispatched by its ``field`` through
FIELD_HANDLERS (saas.messaging.inbound.notification_fields). A field without a
handler is kept (the notification is stored) and named in the notification's
outcome. One bad item never holds up the others: an item refused for what it
holds, or one the database refuses (then the notification is applied again
item by item), is kept with its error (saas.messaging.inbound.unapplied) and the rest
applied.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, select, update

from saas import events
from saas.extensions import db
from saas.messaging.inbound import unapplied
from saas.messaging.models import WhatsAppNotification
from saas.messaging.inbound.notification_fields import FIELD_HANDLERS  # noqa: F401  (the table, for callers and tests)
from saas.messaging.inbound.notification_items import Note, apply_changes, apply_one_by_one, error_text, parse
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

APPLY_JOB = "saas.messaging.inbound.notifications.apply_notification"
# A notification whose applying failed this often (not for its content: a database error, say) is left alone.
MAX_ATTEMPTS = 10


# -- applying --------------------------------------------------------------------------------

_MARK_APPLIED = (
    update(WhatsAppNotification).where(WhatsAppNotification.id == bindparam("nid"))
    .values(processed_at=bindparam("now"), attempts=WhatsAppNotification.attempts + 1,
            outcome=bindparam("the_outcome"), error=bindparam("the_error"))
    .execution_options(synchronize_session=False))


def _claim(conn, ids: list[int]):
    return conn.execute(select(WhatsAppNotification.id, WhatsAppNotification.body, WhatsAppNotification.received_at)
                        .where(WhatsAppNotification.id.in_(ids), WhatsAppNotification.processed_at.is_(None))
                        .order_by(WhatsAppNotification.id)
                        .with_for_update(skip_locked=True)).all()


def _parsed(row, note: Note):
    try:
        return parse(row.body, note)
    except (ValueError, RecursionError) as exc:  # not JSON, or nested deeper than a parser goes
        note.error = f"not a notification: {type(exc).__name__}: {exc}"[:1000]
        return []


def _finish(conn, rows, notes: dict[int, Note], now: datetime) -> None:
    """Keep each notification's unapplied items and mark it applied, in the caller's transaction."""
    for row in rows:
        unapplied.keep(conn, row.id, row.received_at, notes[row.id].unapplied, now)
    conn.execute(_MARK_APPLIED, [{"nid": nid, "now": now, "the_outcome": note.outcome(), "the_error": note.error}
                                 for nid, note in notes.items()])


def _apply(ids: list[int], now: datetime) -> int:
    """Apply the unapplied notifications among ``ids`` in one transaction. Commits; returns how many."""
    session = db.session
    try:
        conn = session.connection()
        rows = _claim(conn, ids)
        if not rows:
            session.rollback()
            return 0
        notes = {row.id: Note() for row in rows}
        apply_changes(session, [(notes[row.id], change) for row in rows for change in _parsed(row, notes[row.id])],
                      now)
        _finish(conn, rows, notes, now)
        events.commit(session)
    except BaseException:
        session.rollback()
        raise
    return len(rows)


def _apply_item_by_item(notification_id: int, now: datetime) -> int:
    """Apply one notification item by item, keeping each item the database refuses with its error. Commits."""
    session = db.session
    try:
        conn = session.connection()
        rows = _claim(conn, [notification_id])
        if not rows:
            session.rollback()
            return 0
        log.warning("applying WhatsApp notification %s item by item", notification_id)
        note = Note()
        apply_one_by_one(session, note, _parsed(rows[0], note), now)
        _finish(conn, rows, {notification_id: note}, now)
        events.commit(session)
    except BaseException:
        session.rollback()
        raise
    if note.unapplied:
        log.warning("WhatsApp notification %s applied with %d items kept unapplied", notification_id,
                    len(note.unapplied))
    return 1


def apply_many(batch: list[tuple]) -> None:
    """The job's batch form: apply the notifications named, a few per transaction.

    A transaction that fails is retried one notification at a time, and a
    notification that fails alone is applied item by item: an item the
    database refuses is kept with its error (and tried again later) while
    every other item applies. A notification that cannot be applied even so
    (the database is down, say) keeps its error and attempt count, and the
    sweep tries it again later.
    """
    ids = sorted({int(args[0]) for args in batch})
    size = max(1, current_app.config.get("WHATSAPP_APPLY_BATCH", 10))
    for start in range(0, len(ids), size):
        # Let requests waiting on this process run between transactions (under gevent this
        # thread is a greenlet, and applying is mostly CPU-bound work between queries).
        time.sleep(0)
        chunk = ids[start:start + size]
        try:
            _apply(chunk, utcnow())
        except Exception as exc:
            log.warning("WhatsApp notifications %s did not apply together (%s); applying each alone", chunk,
                        error_text(exc))
            for one in chunk:
                _apply_alone(one, whole_first=len(chunk) > 1)


def _apply_alone(notification_id: int, *, whole_first: bool) -> None:
    try:
        if not (whole_first and _applied_whole(notification_id)):
            _apply_item_by_item(notification_id, utcnow())
    except Exception as exc:
        _failed(notification_id, exc)


def _applied_whole(notification_id: int) -> bool:
    """Whether the notification applied in one piece (cheaper than item by item, which follows if not)."""
    try:
        _apply([notification_id], utcnow())
    except Exception as exc:
        log.warning("WhatsApp notification %s did not apply in one piece (%s); applying it item by item",
                    notification_id, error_text(exc))
        return False
    return True


def _failed(notification_id: int, exc: Exception) -> None:
    log.error("WhatsApp notification %s could not be applied", notification_id, exc_info=exc)
    session = db.session
    session.rollback()
    session.execute(update(WhatsAppNotification).where(WhatsAppNotification.id == notification_id).values(
        attempts=WhatsAppNotification.attempts + 1, error=error_text(exc)))
    session.commit()


def apply_notification(notification_id: int) -> None:
    """Apply one stored notification (the job queued by ``receive``)."""
    apply_many([(notification_id,)])


apply_notification.batch = apply_many


def _waiting(cutoff: datetime, limit: int, *, untried: bool = False) -> list[int]:
    """Ids of notifications stored before ``cutoff`` and not applied, oldest first (``untried``: only those no
    process has tried to apply yet)."""
    query = (select(WhatsAppNotification.id)
             .where(WhatsAppNotification.processed_at.is_(None), WhatsAppNotification.received_at <= cutoff)
             .order_by(WhatsAppNotification.received_at).limit(limit))
    query = query.where(WhatsAppNotification.attempts == 0 if untried
                        else WhatsAppNotification.attempts < MAX_ATTEMPTS)
    ids = list(db.session.scalars(query))
    db.session.rollback()
    return ids


def apply_waiting(*, older_than: timedelta, limit: int = 100, now: datetime | None = None) -> int:
    """Apply notifications still waiting ``older_than`` after they were stored, whichever process stored them;
    how many were found. Returns at once when none waits (one indexed read).

    Each process applies what its own requests stored, so a process holding most of WhatsApp's connections
    falls behind while the others idle; every process runs this often (``WHATSAPP_SHARE_SECONDS``) to take
    the oldest of them. Rows a process is applying are skipped, never waited for (``_claim``), and what its
    queue hands it later is found applied and skipped: each notification is applied once. Only untried ones:
    a notification that failed is the sweep's (``apply_pending``)."""
    ids = _waiting((now or utcnow()) - older_than, limit, untried=True)
    if ids:
        apply_many([(i,) for i in ids])
    return len(ids)


def apply_pending(*, older_than: timedelta = timedelta(seconds=10), limit: int = 500,
                  now: datetime | None = None) -> int:
    """Apply stored notifications still unapplied after ``older_than`` (a crash lost their job), then the
    kept items whose next try is due. Returns how many notifications.

    Run by every process's housekeeping and ``flask whatsapp apply-pending``;
    safe anywhere at once (rows are claimed, and applying is idempotent).
    """
    ids = _waiting((now or utcnow()) - older_than, limit)
    if ids:
        log.warning("applying %d WhatsApp notifications left unapplied", len(ids))
        apply_many([(i,) for i in ids])
    retried = unapplied.retry_due(now=now)
    if retried.applied or retried.kept:
        log.warning("tried %d kept WhatsApp items again: %d applied", retried.applied + retried.kept, retried.applied)
    return len(ids)


def given_up(*, limit: int = 100) -> list[WhatsAppNotification]:
    """Notifications left unapplied after MAX_ATTEMPTS failures (never for their content), for operators."""
    return list(db.session.scalars(
        select(WhatsAppNotification)
        .where(WhatsAppNotification.processed_at.is_(None), WhatsAppNotification.attempts >= MAX_ATTEMPTS)
        .order_by(WhatsAppNotification.id).limit(limit)))


def prune(*, keep: timedelta, now: datetime | None = None, limit: int = 5000) -> int:
    """Delete applied notifications older than ``keep``, and kept items applied as long ago; returns how many
    notifications. Items never applied stay (they hold their own copy). Commits."""
    cutoff = (now or utcnow()) - keep
    ids = select(WhatsAppNotification.id).where(WhatsAppNotification.processed_at < cutoff).limit(limit)
    deleted = db.session.execute(delete(WhatsAppNotification).where(
        WhatsAppNotification.id.in_(ids.scalar_subquery()))).rowcount
    db.session.commit()
    unapplied.prune(keep_for=keep, now=now, limit=limit)
    return deleted
