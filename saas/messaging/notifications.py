"""WhatsApp's webhook notifications, applied after the request that stored them.

``saas.messaging.intake.receive`` checks ``X-Hub-Signature-256`` over the raw
body with the app secret and stores the body; the request is answered at once. A background job
(``apply_notification``, batched) applies what was stored; the sweep
(``apply_pending``) applies whatever a crash left unapplied. Applying is
idempotent, so a notification WhatsApp repeats, or one applied twice by a job
and the sweep, changes nothing the second time.

Each change of a notification is dispatched by its ``field`` through
FIELD_HANDLERS. A field without a handler is kept (the notification is
stored) and named in the notification's outcome.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, select, update

from saas.audit import services as audit
from saas.extensions import db
from saas.messaging import callback_data, forwarding, inbound, media
from saas.messaging.forwarding import Event, NumberRef
from saas.messaging.inbound import ident, items, obj, text
from saas.messaging.models import Message, PhoneNumber, WhatsAppNotification
from saas.messaging.statuses import TIMESTAMP_FIELD, StatusUpdate, apply_statuses
from saas.messaging.windows import insert_for, refresh_service_windows
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

APPLY_JOB = "saas.messaging.notifications.apply_notification"
# A notification that failed this often (not for its content: a database error, say) is left alone.
MAX_ATTEMPTS = 10
OUTCOME_LENGTH = 500


# -- applying --------------------------------------------------------------------------------

@dataclass
class Note:
    """What applying one notification did, for its ``outcome``."""

    counts: Counter = field(default_factory=Counter)
    unknown_numbers: set = field(default_factory=set)
    unknown_accounts: set = field(default_factory=set)
    no_handler: set = field(default_factory=set)
    error: str | None = None

    def outcome(self) -> str:
        parts = [f"{name} {n}" for name, n in sorted(self.counts.items())] or ["nothing to apply"]
        if self.unknown_numbers:
            parts.append("unknown numbers: " + ", ".join(sorted(self.unknown_numbers)))
        if self.unknown_accounts:
            parts.append("unknown accounts: " + ", ".join(sorted(self.unknown_accounts)))
        if self.no_handler:
            parts.append("stored, no handler: " + ", ".join(sorted(self.no_handler)))
        line = "; ".join(parts)
        return line if len(line) <= OUTCOME_LENGTH else line[: OUTCOME_LENGTH - 1] + "…"


@dataclass
class Batch:
    """Notifications applied together, in one transaction."""

    conn: object
    now: datetime
    numbers: dict[str, NumberRef] = field(default_factory=dict)
    statuses: list[StatusUpdate] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    windows: list[tuple] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    media: list[dict] = field(default_factory=list)

    def numbers_of_account(self, waba_id: str) -> list[PhoneNumber]:
        return list(db.session.scalars(select(PhoneNumber).where(PhoneNumber.waba_id == waba_id)
                                       .order_by(PhoneNumber.id)))


def apply_messages(batch: Batch, note: Note, waba_id: str, field_name: str, value: dict) -> None:
    """Statuses and inbound messages of one of our numbers (``messages`` field)."""
    metadata = obj(value.get("metadata"))
    phone_number_id = ident(metadata.get("phone_number_id"), 64)
    number = batch.numbers.get(phone_number_id)
    if number is None:
        note.unknown_numbers.add(phone_number_id or "(none)")
        return
    for status in items(value.get("statuses")):
        wamid, name = ident(status.get("id"), 128), status.get("status")
        if wamid is None:
            note.counts["skipped"] += 1
            continue
        batch.events.append(Event(number, "status", wamid, status, waba_id=waba_id, metadata=metadata))
        if name not in TIMESTAMP_FIELD:
            note.counts["statuses not applied"] += 1
            continue
        error = inbound.first_error(status) if name == "failed" else {}
        batch.statuses.append(StatusUpdate(
            number.tenant_id, wamid, name, inbound.moment(status.get("timestamp"), batch.now),
            error_code=error.get("code"), error_title=error.get("title"), error_details=error.get("details"),
            sent_as=callback_data.message_id(status.get(callback_data.FIELD)), **inbound.charge(status)))
        note.counts["statuses"] += 1
    contacts = items(value.get("contacts"))
    for message in items(value.get("messages")):
        wamid = ident(message.get("id"), 128)
        contact = inbound.contact_for(message, contacts)
        keys = inbound.contact_keys(message, contact)
        if wamid is None or not keys:
            note.counts["skipped"] += 1
            continue
        sent_at = inbound.moment(message.get("timestamp"), batch.now)
        batch.messages.append({
            "tenant_id": number.tenant_id, "phone_number_id": number.id, "direction": "in", "wa_id": keys[0],
            "type": text(message.get("type"), 30) or "unknown", "body_summary": inbound.summarise(message),
            "wa_message_id": wamid, "status": "received", "raw_message": message, "conversation_id": None,
            "opened_conversation": False, "created_at": batch.now, "updated_at": batch.now})
        batch.media.extend(media.inbound_rows(number.tenant_id, number.id, message, batch.now))
        if message.get("type") != "system":  # a number change is not the user writing
            batch.windows.extend((number.tenant_id, number.id, key, sent_at) for key in keys)
        batch.events.append(Event(number, "message", wamid, message, contact=contact or None, waba_id=waba_id,
                                  metadata=metadata))
        note.counts["messages"] += 1
    if items(value.get("errors")):
        note.counts["errors"] += len(items(value.get("errors")))


def _digits(value) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


# Meta's webhook says a number was flagged (its quality fell to low) or unflagged (no longer low).
QUALITY_FOR_EVENT = {"FLAGGED": "RED", "UNFLAGGED": "GREEN"}


def apply_quality_update(batch: Batch, note: Note, waba_id: str, field_name: str, value: dict) -> None:
    """A number's quality and messaging limit (``phone_number_quality_update``)."""
    display = _digits(value.get("display_phone_number"))
    numbers = [n for n in batch.numbers_of_account(waba_id) if display and _digits(n.display_number) == display]
    if not numbers:
        note.unknown_numbers.add(display or "(none)")
        return
    event = text(value.get("event"), 40)
    limit = text(value.get("max_daily_conversations_per_business") or value.get("current_limit"), 30)
    quality = QUALITY_FOR_EVENT.get(event or "")
    for number in numbers:
        if quality is not None:
            number.quality_rating = quality
        if limit is not None:
            number.messaging_limit_tier = limit
        audit.record("whatsapp", "whatsapp.quality_update",
                     f"Number {number.display_number}: {event or 'update'}"
                     + (f", quality {quality}" if quality else "") + (f", limit {limit}" if limit else ""),
                     tenant_id=number.tenant_id, waba_id=waba_id, value=value)
    note.counts["quality updates"] += 1


def record_account_event(batch: Batch, note: Note, waba_id: str, field_name: str, value: dict) -> None:
    """An account event (``account_update``, ``account_review_update``) in each owning tenant's audit log."""
    tenants = sorted({n.tenant_id for n in batch.numbers_of_account(waba_id)})
    if not tenants:
        note.unknown_accounts.add(waba_id or "(none)")
        return
    what = value.get("event") or value.get("decision") or "update"
    for tenant_id in tenants:
        audit.record("whatsapp", f"whatsapp.{field_name}"[:60],
                     f"WhatsApp Business account {waba_id}: {field_name.replace('_', ' ')} {what}",
                     tenant_id=tenant_id, waba_id=waba_id, value=value)
    note.counts[field_name] += 1


def apply_template_update(batch, note, waba_id, field_name, value) -> None:
    """A template's status, quality or category changed at Meta: every tenant's copy of it follows."""
    from saas.messaging.template_updates import apply_template_change

    apply_template_change(waba_id, field_name, value)
    note.counts[field_name] += 1


# The handler for each webhook field: handler(batch, note, waba_id, field, value), in the
# batch's transaction. None: the field is stored (in the notification) with no handler yet.
FIELD_HANDLERS = {
    "messages": apply_messages,
    "phone_number_quality_update": apply_quality_update,
    "account_update": record_account_event,
    "account_review_update": record_account_event,
    "message_template_status_update": apply_template_update,
    "message_template_quality_update": apply_template_update,
    "template_category_update": apply_template_update,
}


def _changes(body: str):
    """(waba id, field, value) of each change of a notification body; ValueError if it is not one."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    for entry in items(document.get("entry")):
        waba_id = ident(entry.get("id"), 64) or ""
        for change in items(entry.get("changes")):
            name = change.get("field")
            yield waba_id, name if isinstance(name, str) else "", obj(change.get("value"))


def _numbers(conn, phone_number_ids) -> dict[str, NumberRef]:
    if not phone_number_ids:
        return {}
    rows = conn.execute(select(PhoneNumber.id, PhoneNumber.tenant_id, PhoneNumber.phone_number_id,
                               PhoneNumber.display_number, PhoneNumber.waba_id)
                        .where(PhoneNumber.phone_number_id.in_(sorted(phone_number_ids))))
    return {row.phone_number_id: NumberRef(*row) for row in rows}


_INSERT_INBOUND: dict[str, object] = {}


def _insert_inbound(conn):
    stmt = _INSERT_INBOUND.get(conn.dialect.name)
    if stmt is None:
        stmt = _INSERT_INBOUND[conn.dialect.name] = insert_for(conn, Message).on_conflict_do_nothing(
            index_elements=["wa_message_id"])
    return stmt


_MARK_APPLIED = (
    update(WhatsAppNotification).where(WhatsAppNotification.id == bindparam("nid"))
    .values(processed_at=bindparam("now"), attempts=WhatsAppNotification.attempts + 1,
            outcome=bindparam("the_outcome"), error=bindparam("the_error"))
    .execution_options(synchronize_session=False))


def _apply(ids: list[int], now: datetime) -> int:
    """Apply the unapplied notifications among ``ids`` in one transaction. Commits; returns how many."""
    session = db.session
    try:
        conn = session.connection()
        rows = conn.execute(select(WhatsAppNotification.id, WhatsAppNotification.body)
                            .where(WhatsAppNotification.id.in_(ids), WhatsAppNotification.processed_at.is_(None))
                            .order_by(WhatsAppNotification.id)
                            .with_for_update(skip_locked=True)).all()
        if not rows:
            session.rollback()
            return 0
        parsed, notes = [], {}
        for row in rows:
            note = notes[row.id] = Note()
            try:
                parsed.append((note, list(_changes(row.body))))
            except ValueError as exc:
                note.error = f"not a notification: {exc}"[:1000]
        batch = Batch(conn, now)
        batch.numbers = _numbers(conn, {
            ident(obj(value.get("metadata")).get("phone_number_id"), 64)
            for _, changes in parsed for _, name, value in changes if name == "messages"} - {None})
        for note, changes in parsed:
            for waba_id, name, value in changes:
                handler = FIELD_HANDLERS.get(name, False)
                if handler is None:
                    note.no_handler.add(name)
                elif handler is False:
                    note.no_handler.add(f"{name or '(none)'} (unknown field)"[:80])
                else:
                    handler(batch, note, waba_id, name, value)
        session.flush()  # what handlers changed through the ORM (numbers' quality, audit entries)
        if batch.statuses:
            apply_statuses(conn, batch.statuses)
        if batch.messages:
            conn.execute(_insert_inbound(conn), sorted(batch.messages, key=lambda row: row["wa_message_id"]))
        if batch.windows:
            refresh_service_windows(conn, batch.windows)
        media.record(conn, batch.media)
        if batch.events:
            forwarding.record_events(conn, batch.events, now)
        conn.execute(_MARK_APPLIED, [{"nid": nid, "now": now, "the_outcome": note.outcome(), "the_error": note.error}
                                     for nid, note in notes.items()])
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(rows)


def apply_many(batch: list[tuple]) -> None:
    """The job's batch form: apply the notifications named, a few per transaction.

    A transaction that fails is retried one notification at a time, so one
    that cannot be applied holds up no other; it keeps its error and attempt
    count, and the sweep tries it again later.
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
            if len(chunk) == 1:
                _failed(chunk[0], exc)
                continue
            for one in chunk:
                try:
                    _apply([one], utcnow())
                except Exception as exc_one:
                    _failed(one, exc_one)


def _failed(notification_id: int, exc: Exception) -> None:
    log.error("WhatsApp notification %s could not be applied", notification_id, exc_info=exc)
    session = db.session
    session.rollback()
    session.execute(update(WhatsAppNotification).where(WhatsAppNotification.id == notification_id).values(
        attempts=WhatsAppNotification.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:1000]))
    session.commit()


def apply_notification(notification_id: int) -> None:
    """Apply one stored notification (the job queued by ``receive``)."""
    apply_many([(notification_id,)])


apply_notification.batch = apply_many


def apply_pending(*, older_than: timedelta = timedelta(seconds=10), limit: int = 500,
                  now: datetime | None = None) -> int:
    """Apply stored notifications still unapplied after ``older_than`` (a crash lost their job). Returns how many.

    Run by every process's housekeeping and ``flask whatsapp apply-pending``;
    safe anywhere at once (rows are claimed, and applying is idempotent).
    """
    cutoff = (now or utcnow()) - older_than
    ids = list(db.session.scalars(
        select(WhatsAppNotification.id)
        .where(WhatsAppNotification.processed_at.is_(None), WhatsAppNotification.received_at <= cutoff,
               WhatsAppNotification.attempts < MAX_ATTEMPTS)
        .order_by(WhatsAppNotification.received_at).limit(limit)))
    db.session.rollback()
    if ids:
        log.warning("applying %d WhatsApp notifications left unapplied", len(ids))
        apply_many([(i,) for i in ids])
    return len(ids)


def prune(*, keep: timedelta, now: datetime | None = None, limit: int = 5000) -> int:
    """Delete applied notifications older than ``keep``; returns how many. Commits."""
    cutoff = (now or utcnow()) - keep
    ids = select(WhatsAppNotification.id).where(WhatsAppNotification.processed_at < cutoff).limit(limit)
    deleted = db.session.execute(delete(WhatsAppNotification).where(
        WhatsAppNotification.id.in_(ids.scalar_subquery()))).rowcount
    db.session.commit()
    return deleted
