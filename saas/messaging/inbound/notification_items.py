"""A notification's changes and items, applied together or one at a time, and what became of each.

A notification holds entries, each with changes (a field and its value); a
``messages`` change lists statuses and inbound messages. Everything is
applied in one batch (``apply_changes``): the handlers of
saas.messaging.inbound.notification_fields collect, then a few statements write. When
the batch fails, ``apply_one_by_one`` applies each item alone in a savepoint,
so one item the database refuses holds up no other; it is kept with its
error. An item a handler refuses for what it holds is kept the same way.
Each kept item has a notification holding it alone (``Unapplied.body``), so
it can be applied again by itself.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from saas import events
from saas.extensions import db
from saas.messaging.domain_events import NumberRef
from saas.messaging.numbers import media
from saas.messaging.inbound.objects import ident, obj, text
from saas.messaging.models import Message, PhoneNumber
from saas.messaging.inbound.notification_fields import FIELD_HANDLERS, NUMBER_FIELDS
from saas.messaging.inbound.statuses import StatusUpdate, apply_statuses
from saas.database import insert_for
from saas.messaging.outbound.windows import refresh_service_windows

OUTCOME_LENGTH = 500
ERROR_LENGTH = 1000
LOCATION_LENGTH = 120


@dataclass(frozen=True)
class Change:
    """One change of a notification: where it is, its account, its field and its value.

    ``single``: the value holds one item split out of its change, and ``where`` already names it.
    """

    where: str
    waba_id: str
    field: str
    value: dict
    single: bool = False

    def body(self) -> dict:
        return holding(self.waba_id, self.field, self.value)

    def wa_message_id(self) -> str | None:
        """The id of the one status or message a split change holds, when it has a usable one."""
        for key in ("statuses", "messages"):
            listed = self.value.get(key)
            if self.single and isinstance(listed, list) and listed and isinstance(listed[0], dict):
                return ident(listed[0].get("id"), 128)
        return None


@dataclass(frozen=True)
class Unapplied:
    """An item kept unapplied: where it was, a notification holding it alone, and why.

    ``retry``: an error raised applying it (tried again later), not a refusal of what it holds.
    """

    location: str
    field: str
    wa_message_id: str | None
    body: dict
    error: str
    retry: bool

    def body_text(self) -> str:
        # ASCII JSON: a NUL or half a surrogate pair stays an escape every database stores.
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=True)


def holding(waba_id: str, field_name: str, value) -> dict:
    """A notification in Meta's shape holding one change."""
    return {"object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "changes": [{"value": value, "field": field_name}]}]}


def _one_item(value: dict, key: str, listed) -> dict:
    """``value`` of a messages change with only ``listed`` under ``key`` (its metadata and contacts kept)."""
    kept = {name: v for name, v in value.items() if name not in ("statuses", "messages", "errors")}
    kept[key] = listed
    return kept


def error_text(exc: BaseException) -> str:
    """An exception as an operator reads it: its class and first lines, without the SQL it ran."""
    words = str(exc).split("\n[SQL:", 1)[0]
    return text(f"{type(exc).__name__}: {words}", ERROR_LENGTH) or type(exc).__name__


@dataclass
class Note:
    """What applying one notification did, for its ``outcome``, and the items it kept unapplied."""

    counts: Counter = field(default_factory=Counter)
    unknown_numbers: set = field(default_factory=set)
    unknown_accounts: set = field(default_factory=set)
    no_handler: set = field(default_factory=set)
    unapplied: list[Unapplied] = field(default_factory=list)
    error: str | None = None
    where: str = ""
    single: bool = False

    def refuse(self, waba_id: str, field_name: str, value, key: str, index: int | None, item, why: str) -> None:
        """Keep an item a handler cannot use (``value[key][index]``, or ``value[key]`` itself), with why."""
        if self.single:
            location = self.where
        else:
            location = f"{self.where}, {key}" + (f"[{index}]" if index is not None else "")
        listed = [item] if index is not None else item
        wamid = ident(item.get("id"), 128) if isinstance(item, dict) else None
        self.unapplied.append(Unapplied(location[:LOCATION_LENGTH], field_name, wamid,
                                        holding(waba_id, field_name, _one_item(value, key, listed)),
                                        text(why, ERROR_LENGTH) or "refused", retry=False))

    def refuse_raw(self, location: str, body: dict, why: str) -> None:
        """Keep a part of the notification that is not even a change (an entry or change that is no object)."""
        self.unapplied.append(Unapplied(location[:LOCATION_LENGTH], "", None, body, why, retry=False))

    def failed(self, change: Change, exc: Exception) -> None:
        """Keep an item whose applying raised: it is tried again later."""
        self.unapplied.append(Unapplied(change.where[:LOCATION_LENGTH], change.field, change.wa_message_id(),
                                        change.body(), error_text(exc), retry=True))

    def merge(self, other: "Note") -> None:
        self.counts.update(other.counts)
        self.unknown_numbers |= other.unknown_numbers
        self.unknown_accounts |= other.unknown_accounts
        self.no_handler |= other.no_handler
        self.unapplied.extend(other.unapplied)

    def outcome(self) -> str:
        parts = [f"{name} {n}" for name, n in sorted(self.counts.items())]
        if self.unapplied:
            parts.append(f"kept unapplied {len(self.unapplied)}")
        parts = parts or ["nothing to apply"]
        if self.unknown_numbers:
            parts.append("unknown numbers: " + ", ".join(sorted(self.unknown_numbers)))
        if self.unknown_accounts:
            parts.append("unknown accounts: " + ", ".join(sorted(self.unknown_accounts)))
        if self.no_handler:
            parts.append("stored, no handler: " + ", ".join(sorted(self.no_handler)))
        return text("; ".join(parts), OUTCOME_LENGTH)


def parse(body: str, note: Note) -> list[Change]:
    """The changes of a notification body; ValueError if it is not one. Parts that are no object are refused."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    changes = []
    entries = document.get("entry")
    if entries is not None and not isinstance(entries, list):
        note.refuse_raw("entry", document, "entry is not a list")
    for e, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            note.refuse_raw(f"entry {e}", dict(document, entry=[entry]), "not a JSON object")
            continue
        waba_id = ident(entry.get("id"), 64) or ""
        listed = entry.get("changes")
        if listed is not None and not isinstance(listed, list):
            note.refuse_raw(f"entry {e}, changes", dict(document, entry=[entry]), "changes is not a list")
        for c, change in enumerate(listed if isinstance(listed, list) else []):
            if not isinstance(change, dict):
                note.refuse_raw(f"entry {e}, change {c}", dict(document, entry=[dict(entry, changes=[change])]),
                                "not a JSON object")
                continue
            name = change.get("field")
            changes.append(Change(f"entry {e}, change {c}", waba_id, name if isinstance(name, str) else "",
                                  obj(change.get("value"))))
    return changes


def pieces(change: Change) -> list[Change]:
    """The change split into changes of one item each (a messages change), or itself (any other)."""
    if change.field != "messages" or change.single:
        return [change]
    parts = []
    for key in ("statuses", "messages"):
        listed = change.value.get(key)
        if isinstance(listed, list):
            parts += [Change(f"{change.where}, {key}[{i}]", change.waba_id, change.field,
                             _one_item(change.value, key, [item]), single=True) for i, item in enumerate(listed)]
        elif listed is not None:
            parts.append(Change(f"{change.where}, {key}", change.waba_id, change.field,
                                _one_item(change.value, key, listed), single=True))
    if change.value.get("errors") is not None:
        parts.append(Change(f"{change.where}, errors", change.waba_id, change.field,
                            _one_item(change.value, "errors", change.value["errors"]), single=True))
    return parts or [change]


@dataclass
class Batch:
    """What the changes of a batch mean, written together in one transaction."""

    conn: object
    now: datetime
    numbers: dict[str, NumberRef] = field(default_factory=dict)
    statuses: list[StatusUpdate] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    windows: list[tuple] = field(default_factory=list)
    events: list = field(default_factory=list)  # domain events (saas.events.Event), published with the batch
    media: list[dict] = field(default_factory=list)

    def numbers_of_account(self, waba_id: str) -> list[PhoneNumber]:
        return list(db.session.scalars(select(PhoneNumber).where(PhoneNumber.waba_id == waba_id)
                                       .order_by(PhoneNumber.id)))


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


def _collect(batch: Batch, note: Note, change: Change) -> None:
    note.where, note.single = change.where, change.single
    handler = FIELD_HANDLERS.get(change.field, False)
    if handler is None:
        note.no_handler.add(change.field)
    elif handler is False:
        note.no_handler.add(text(f"{change.field or '(none)'} (unknown field)", 80))
    else:
        handler(batch, note, change.waba_id, change.field, change.value)


def apply_changes(session, work: list[tuple[Note, Change]], now: datetime) -> None:
    """Apply each (note, change) of ``work`` in the session's transaction, as one batch. No commit; raises
    whatever the database refuses (the caller rolls back, or applies one by one)."""
    conn = session.connection()
    batch = Batch(conn, now)
    batch.numbers = _numbers(conn, {
        ident(obj(change.value.get("metadata")).get("phone_number_id"), 64)
        for _, change in work if change.field in NUMBER_FIELDS} - {None})
    for note, change in work:
        _collect(batch, note, change)
    session.flush()  # what handlers changed through the ORM (numbers' quality, audit entries)
    if batch.statuses:
        apply_statuses(conn, batch.statuses)
    if batch.messages:
        conn.execute(_insert_inbound(conn), sorted(batch.messages, key=lambda row: row["wa_message_id"]))
    if batch.windows:
        refresh_service_windows(conn, batch.windows)
    media.record(conn, batch.media)
    events.publish(conn, batch.events)


def apply_one_by_one(session, note: Note, changes: list[Change], now: datetime) -> None:
    """Apply each item of ``changes`` alone, in a savepoint of the session's transaction: an item that
    raises is rolled back alone and kept on ``note`` with its error. No commit."""
    for change in changes:
        for piece in pieces(change):
            part = Note()
            try:
                with session.begin_nested():
                    apply_changes(session, [(part, piece)], now)
            except Exception as exc:
                note.failed(piece, exc)
            else:
                note.merge(part)
