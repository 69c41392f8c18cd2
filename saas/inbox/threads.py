"""Threads and their messages, written from messaging's domain events and from the inbox's own sends.

Every function here works on the caller's connection, in the caller's transaction (a consumer's delivering
one, or a service's), and is idempotent: an event handed over again finds its entry written (unique on the
tenant and WhatsApp's message id, or our message id) and changes nothing. Entries are ordered by WhatsApp's
clock (``at``), so messages arriving out of order still read in the order they were written; a status never
moves a tick backwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from saas.contacts import directory
from saas.contacts.models import SOURCE_INBOUND
from saas.database import among, built_once, insert_for, insert_many
from saas.inbox import rendering
from saas.inbox.models import (
    AGENT, API, AUTOMATION, BROADCAST, CUSTOMER, MESSAGE, OPEN, ORDER, RESOLVED, RULE_RUN, SYSTEM, Entry, Thread,
)
from saas.messaging.inbound.objects import moment
from saas.messaging.models import STATUS_RANK, Message
from saas.timeutil import utcnow

# WhatsApp's free customer-service window after the customer's last message.
WINDOW = timedelta(hours=24)
# Senders that are not the inbox name themselves with an Idempotency-Key prefix: "broadcast:...", "automation:...",
# "order-notification:..." (an order's state reached). An order's notification answers nobody: like a broadcast,
# it leaves a waiting customer waiting.
AUTHOR_PREFIXES = {"broadcast:": BROADCAST, "automation:": AUTOMATION, "order-notification:": ORDER}
ANSWERING = (AGENT, AUTOMATION, API)


@dataclass(frozen=True)
class Touched:
    """A thread an event changed, and how (for assignment and live updates)."""

    tenant_id: int
    thread_id: int
    new_inbound: bool = False
    status: str = OPEN
    assignee_id: int | None = None


def _contact_id(conn, tenant_id: int, key: str, name: str | None) -> int | None:
    parsed = directory.parse_wa_id(key)
    keys = {"wa_id": parsed.digits} if parsed else {"user_id": key[:100]}
    # Its savepoint, not the session, decides: closing it must never undo a contact made in a caller's savepoint.
    session = Session(bind=conn, join_transaction_mode="rollback_only")
    try:
        with session.begin_nested():
            contact, _ = directory.find_or_create(session, tenant_id, name=name, source=SOURCE_INBOUND, **keys)
        return contact.id
    except IntegrityError:  # made a moment ago by another transaction
        found = directory.find(session, tenant_id, **keys)
        return found.id if found else None
    finally:
        session.close()


def _thread_query(conn):
    return select(Thread.__table__).where(
        Thread.tenant_id == bindparam("tenant_id"), Thread.phone_number_id == bindparam("number_pk"),
        Thread.wa_id == bindparam("wa_id")).with_for_update()


def _thread_insert(conn):
    # Made here: the new row (locked by this transaction); made a moment ago by another one: nothing.
    return insert_for(conn, Thread).on_conflict_do_nothing(
        index_elements=["tenant_id", "phone_number_id", "wa_id"]).returning(*Thread.__table__.c)


def thread_for(conn, tenant_id: int, number_pk: int, wa_id: str, *, name: str | None = None,
               status: str = OPEN, now: datetime | None = None) -> Thread:
    """The thread of ``wa_id`` on the tenant's number ``number_pk``, made (with its contact) when there is none.
    Locks its row (FOR UPDATE) for the rest of the caller's transaction."""
    query = built_once(conn, "inbox.thread", _thread_query)
    which = {"tenant_id": tenant_id, "number_pk": number_pk, "wa_id": wa_id}
    row = conn.execute(query, which).first()
    if row is None:
        now = now or utcnow()
        contact_id = _contact_id(conn, tenant_id, wa_id, name)
        row = conn.execute(built_once(conn, "inbox.thread.insert", _thread_insert), {
            "tenant_id": tenant_id, "phone_number_id": number_pk, "wa_id": wa_id, "contact_id": contact_id,
            "name": name[:200] if name else None, "status": status, "unread": 0, "last_preview": "",
            "created_at": now, "updated_at": now}).first() or conn.execute(query, which).first()
    return row


def _insert_entry(conn, values: dict, conflict: str) -> int | None:
    def build(conn):
        return insert_for(conn, Entry).on_conflict_do_nothing(index_elements=["tenant_id", conflict]).returning(
            Entry.id)

    return conn.execute(built_once(conn, f"inbox.entry.{conflict}", build), values).scalar()


_TOUCHED = (update(Thread).where(Thread.id == bindparam("b_thread"), Thread.tenant_id == bindparam("b_tenant"))
            .values(updated_at=bindparam("b_now")))


def _touch(conn, thread, at: datetime, preview: str, now: datetime, **values) -> None:
    if thread.last_message_at is None or at >= thread.last_message_at:
        values.update(last_message_at=at, last_preview=preview[:300])
    conn.execute(update(Thread).where(Thread.id == thread.id, Thread.tenant_id == thread.tenant_id)
                 .values(updated_at=now, **values))


def record_inbound(conn, tenant_id: int, number_pk: int, sender: str, wa_message_id: str, message: dict,
                   contact: dict | None, now: datetime | None = None) -> Touched | None:
    """A customer's message into its thread (None when it was there already). Opens a resolved or pending
    thread again, unread + 1, the customer-service window moved to 24 h after it, and the customer waiting."""
    now = now or utcnow()
    at = moment(message.get("timestamp"), now)
    profile = contact.get("profile") if isinstance(contact, dict) and isinstance(contact.get("profile"), dict) else {}
    name = profile.get("name") if isinstance(profile.get("name"), str) else None
    thread = thread_for(conn, tenant_id, number_pk, sender, name=name, now=now)
    kind, content, line = rendering.inbound(message)
    entry_id = _insert_entry(conn, {
        "tenant_id": tenant_id, "thread_id": thread.id, "kind": MESSAGE, "direction": "in", "author": CUSTOMER,
        "wa_message_id": wa_message_id[:128], "type": kind, "content": content, "text": line, "at": at,
        "created_at": now}, "wa_message_id")
    if entry_id is None:
        return None
    expires = at + WINDOW
    values = {"unread": thread.unread + 1, "status": OPEN,
              "window_expires_at": max(expires, thread.window_expires_at or expires),
              "waiting_since": min(at, thread.waiting_since or at)}
    if name and name != thread.name:
        values["name"] = name[:200]
    _touch(conn, thread, at, line, now, **values)
    return Touched(tenant_id, thread.id, new_inbound=True, status=OPEN, assignee_id=thread.assignee_id)


def author_of(idempotency_key: str | None) -> str:
    """Who sent a message the inbox did not send itself: a broadcast, an automation, or the API."""
    for prefix, author in AUTHOR_PREFIXES.items():
        if idempotency_key and idempotency_key.startswith(prefix):
            return author
    return API


def outbound_row(tenant_id: int, thread_id: int | None, *, message_id: int | None, wa_message_id: str | None,
                 author: str, kind: str, content: dict, line: str, at: datetime, status: str | None,
                 now: datetime, author_user_id: int | None = None, error_code: int | None = None,
                 error_title: str | None = None) -> dict:
    """The entry of a message to the customer (``record_outbound``'s), as values to insert."""
    return {"tenant_id": tenant_id, "thread_id": thread_id, "kind": MESSAGE, "direction": "out", "author": author,
            "author_user_id": author_user_id, "message_id": message_id, "wa_message_id": wa_message_id,
            "type": kind, "content": content, "text": line[:4096], "status": status, "error_code": error_code,
            "error_title": error_title, "at": at, "created_at": now}


def record_outbound(conn, tenant_id: int, *, number_pk: int, wa_id: str, message_id: int | None,
                    wa_message_id: str | None, author: str, kind: str, content: dict, line: str,
                    at: datetime, status: str | None, author_user_id: int | None = None,
                    error_code: int | None = None, error_title: str | None = None,
                    now: datetime | None = None) -> Touched:
    """A message to the customer into its thread (made, resolved, when the business writes first).

    Idempotent on ``message_id``: the entry a settled send already made learns the author and content the
    inbox knows (an agent's reply), never loses them to a later, vaguer event.
    """
    now = now or utcnow()
    thread = thread_for(conn, tenant_id, number_pk, wa_id, status=RESOLVED, now=now)
    existing = conn.execute(select(Entry.id, Entry.author, Entry.status).where(
        Entry.tenant_id == tenant_id, Entry.message_id == message_id)).first() if message_id else None
    if existing is None:
        entry_id = _insert_entry(conn, outbound_row(
            tenant_id, thread.id, message_id=message_id, wa_message_id=wa_message_id, author=author, kind=kind,
            content=content, line=line, at=at, status=status, author_user_id=author_user_id,
            error_code=error_code, error_title=error_title, now=now), "message_id")
        if entry_id is None:
            return Touched(tenant_id, thread.id, status=thread.status, assignee_id=thread.assignee_id)
    else:
        values = {}
        if author != API and (existing.author == API or author_user_id):
            values.update(author=author, author_user_id=author_user_id, content=content, text=line[:4096], type=kind)
        if wa_message_id:
            values["wa_message_id"] = wa_message_id
        if status and STATUS_RANK.get(status, 0) > STATUS_RANK.get(existing.status or "pending", 0):
            values.update(status=status, error_code=error_code, error_title=error_title)
        if values:
            conn.execute(update(Entry).where(Entry.id == existing.id, Entry.tenant_id == tenant_id).values(**values))
    answered = {}
    if author in ANSWERING and status != "failed":
        answered["waiting_since"] = None
        if author == AGENT:
            answered["unread"] = 0
    _touch(conn, thread, at, line, now, **answered)
    return Touched(tenant_id, thread.id, status=thread.status, assignee_id=thread.assignee_id)


def record_message_row(conn, tenant_id: int, message_id: int, *, status: str | None = None,
                       error_code: int | None = None, error_title: str | None = None,
                       now: datetime | None = None) -> Touched | None:
    """An outbound Message row of ours into its thread (a send settled, a status of a send the inbox did not
    make), its author read from how it was sent. None for an inbound or unknown row."""
    row = conn.execute(select(
        Message.id, Message.phone_number_id, Message.wa_id, Message.type, Message.body_summary, Message.direction,
        Message.wa_message_id, Message.status, Message.idempotency_key, Message.created_at,
        Message.error_code, Message.error_title).where(Message.id == message_id, Message.tenant_id == tenant_id)
    ).first()
    if row is None or row.direction != "out":
        return None
    status = status or row.status
    return record_outbound(
        conn, tenant_id, number_pk=row.phone_number_id, wa_id=row.wa_id, message_id=row.id,
        wa_message_id=row.wa_message_id, author=author_of(row.idempotency_key), kind=row.type,
        content={"summary": row.body_summary}, line=row.body_summary or row.type, at=row.created_at,
        status=status, error_code=error_code if error_code is not None else row.error_code,
        error_title=error_title or row.error_title, now=now)


def apply_status(conn, tenant_id: int, wa_message_id: str, status: str, *, error_code: int | None = None,
                 error_title: str | None = None, now: datetime | None = None) -> Touched | None:
    """WhatsApp's status of an outbound message onto its entry: the tick moves forward only (read never
    becomes delivered again); ``failed`` keeps Meta's refusal. None when the message is not ours."""
    if status not in STATUS_RANK:
        return None
    now = now or utcnow()
    entry = conn.execute(select(Entry.id, Entry.thread_id, Entry.status).where(
        Entry.tenant_id == tenant_id, Entry.wa_message_id == wa_message_id)).first()
    if entry is None:
        message_id = conn.execute(select(Message.id).where(
            Message.tenant_id == tenant_id, Message.wa_message_id == wa_message_id)).scalar()
        if message_id is None:
            return None
        return record_message_row(conn, tenant_id, message_id, status=status, error_code=error_code,
                                  error_title=error_title, now=now)
    if STATUS_RANK[status] <= STATUS_RANK.get(entry.status or "pending", 0):
        return None
    conn.execute(update(Entry).where(Entry.id == entry.id, Entry.tenant_id == tenant_id).values(
        status=status, error_code=error_code, error_title=error_title))
    conn.execute(update(Thread).where(Thread.id == entry.thread_id, Thread.tenant_id == tenant_id)
                 .values(updated_at=now))
    return Touched(tenant_id, entry.thread_id)


def rule_run_row(tenant_id: int, thread_id: int, rule: str, outcome: str, now: datetime, *,
                 detail: dict | None = None) -> dict:
    """The entry of an automation's run on a thread (``log_rule_run``'s), as values to insert."""
    return {"tenant_id": tenant_id, "thread_id": thread_id, "kind": RULE_RUN, "author": AUTOMATION, "type": "rule_run",
            "content": {"rule": rule[:200], "outcome": outcome[:200], **(detail or {})},
            "text": f"{rule}: {outcome}"[:4096], "at": now, "created_at": now}


def log_rule_run(conn, tenant_id: int, thread_id: int, rule: str, outcome: str, *,
                 detail: dict | None = None, now: datetime | None = None, touch: bool = True) -> int:
    """An automation's run on a thread, shown in it (a rule that matched, what it did or why it did not).
    ``touch=False``: the caller marks the thread updated (``touch_threads``), once for a batch."""
    now = now or utcnow()
    statement = built_once(conn, "inbox.entry", lambda conn: insert_for(conn, Entry).returning(Entry.id))
    entry_id = conn.execute(statement, rule_run_row(tenant_id, thread_id, rule, outcome, now, detail=detail)).scalar()
    if touch:
        conn.execute(_TOUCHED, {"b_thread": thread_id, "b_tenant": tenant_id, "b_now": now})
    return entry_id


def log_rule_runs(conn, rows: list[dict]) -> None:
    """Runs' entries (``rule_run_row``s) in one statement; the caller marks their threads updated."""
    insert_many(conn, Entry.__table__, rows)


def touch_threads(conn, thread_ids, now: datetime) -> None:
    """Mark the threads (ids read in the caller's transaction) updated at ``now``, in one statement."""
    if thread_ids:
        conn.execute(update(Thread).where(among(conn, Thread.id, sorted(thread_ids))).values(updated_at=now))


def log_event(conn, tenant_id: int, thread_id: int, line: str, *, user_id: int | None = None,
              now: datetime | None = None) -> None:
    """A change of the thread itself in its history (assigned, resolved, reopened)."""
    now = now or utcnow()
    conn.execute(insert_for(conn, Entry).values(
        tenant_id=tenant_id, thread_id=thread_id, kind="event", author=SYSTEM, author_user_id=user_id,
        type="event", content={}, text=line[:4096], at=now, created_at=now))
