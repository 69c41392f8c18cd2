"""What people do to threads: resolve, reopen, mark pending, assign, write notes, read; agents' availability.

Each function takes the tenant and works on its rows only (another tenant's thread is NotFound), commits,
and wakes the tenant's open pages. A thread resolved or an agent becoming available hands the waiting
threads out again (saas.inbox.assignment).
"""
from __future__ import annotations

from flask import current_app, has_app_context
from sqlalchemy import select, update

from saas.errors import InvalidRequest, NotFound
from saas.extensions import db
from saas.ids import parse_id
from saas.inbox import assignment, live
from saas.inbox.models import AGENT, NOTE, OPEN, PENDING, RESOLVED, STATUSES, Agent, Entry, SavedReply, Settings, Thread
from saas.inbox.threads import log_event
from saas.tenants import roles
from saas.tenants.models import User
from saas.tenants.scoping import get_owned
from saas.timeutil import utcnow

NOTE_MAX = 4096
INT32_MAX = 2**31 - 1
CAP_MAX = 1000


def get_thread(tenant, thread_id) -> Thread:
    return get_owned(Thread, thread_id, tenant, what="thread")


def _done(tenant_id: int) -> None:
    db.session.commit()
    if has_app_context():
        live.for_app(current_app).notify([tenant_id])


def _hand_out(tenant_id: int, user_id: int | None = None) -> None:
    if assignment.auto_assign_on(db.session.connection(), tenant_id):
        assignment.hand_out(db.session.connection(), tenant_id, user_id=user_id)


def set_status(tenant, thread_id, status: str, *, user_id: int) -> Thread:
    """Resolve, reopen or park (pending) a thread. Resolving frees its agent: they are handed the next
    waiting thread when the tenant assigns automatically."""
    if status not in STATUSES:
        raise InvalidRequest("'status' is open, pending or resolved.", details={"status": ["Unknown status."]})
    thread = get_thread(tenant, thread_id)
    db.session.execute(select(Thread.id).where(Thread.id == thread.id).with_for_update())
    if thread.status != status:
        freed = thread.assignee_id if status != OPEN else None
        now = utcnow()
        values = {"status": status, "updated_at": now}
        if status == RESOLVED:
            values["waiting_since"] = None
        elif status == OPEN and thread.waiting_since is None:
            values["waiting_since"] = now
        db.session.execute(update(Thread).where(Thread.id == thread.id, Thread.tenant_id == tenant.id).values(**values))
        log_event(db.session.connection(), tenant.id, thread.id, {RESOLVED: "resolved", OPEN: "reopened",
                                                                  PENDING: "marked pending"}[status], user_id=user_id)
        db.session.commit()
        if freed is not None:
            _hand_out(tenant.id, freed)
    _done(tenant.id)
    return get_thread(tenant, thread_id)


def team_members(tenant) -> list[User]:
    """The tenant's members who answer the inbox."""
    return [u for u in db.session.scalars(select(User).where(User.tenant_id == tenant.id).order_by(User.id))
            if roles.may(u.role, "inbox")]


def inbox_member(tenant, user_id) -> User:
    """A member of the tenant who may answer the inbox; NotFound otherwise."""
    user_id = parse_id(user_id)
    if user_id is None or user_id > INT32_MAX:  # users' ids are 32-bit
        raise NotFound("No such member.")
    user = db.session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant.id))
    if user is None or not roles.may(user.role, "inbox"):
        raise NotFound("No such member who answers the inbox.")
    return user


def assign(tenant, thread_id, user_id, *, by: int) -> Thread:
    """Assign the thread to a member who answers the inbox (None: unassign)."""
    thread = get_thread(tenant, thread_id)
    member = inbox_member(tenant, user_id) if user_id is not None else None
    db.session.execute(select(Thread.id).where(Thread.id == thread.id).with_for_update())
    assignment.assign_to(db.session.connection(), tenant.id, thread.id, member.id if member else None, by=by)
    _done(tenant.id)
    return get_thread(tenant, thread_id)


def add_note(tenant, thread_id, body, *, user_id: int) -> int:
    """An internal note on the thread (never sent to the customer); its entry id."""
    if not isinstance(body, str) or not body.strip() or "\x00" in body or len(body) > NOTE_MAX:
        raise InvalidRequest(f"A note is 1 to {NOTE_MAX} characters of text, without NUL.",
                             details={"body": [f"1 to {NOTE_MAX} characters, no NUL."]})
    thread = get_thread(tenant, thread_id)
    now = utcnow()
    entry = Entry(tenant_id=tenant.id, thread_id=thread.id, kind=NOTE, author=AGENT, author_user_id=user_id,
                  type="note", content={}, text=body.strip(), at=now, created_at=now)
    db.session.add(entry)
    thread.updated_at = now
    db.session.flush()
    entry_id = entry.id
    _done(tenant.id)
    return entry_id


def mark_read(tenant, thread) -> None:
    if thread.unread:
        db.session.execute(update(Thread).where(Thread.id == thread.id, Thread.tenant_id == tenant.id)
                           .values(unread=0))
        db.session.commit()


def agent_row(tenant, user_id: int) -> Agent:
    """The member's availability (not saved until changed: a member who never set it takes no chats)."""
    return db.session.get(Agent, (tenant.id, user_id)) or Agent(tenant_id=tenant.id, user_id=user_id,
                                                                available=False, max_open=10)


def set_availability(tenant, user_id: int, *, available: bool, max_open: int | None = None) -> Agent:
    """Whether the member takes new chats, and their cap on open threads; hands them waiting threads."""
    if max_open is not None and not (isinstance(max_open, int) and 1 <= max_open <= CAP_MAX):
        raise InvalidRequest(f"The cap is 1 to {CAP_MAX} open threads.", details={"max_open": ["1 to 1000."]})
    inbox_member(tenant, user_id)
    row = agent_row(tenant, user_id)
    db.session.add(row)
    row.available = bool(available)
    if max_open is not None:
        row.max_open = max_open
    db.session.commit()
    if row.available:
        _hand_out(tenant.id, user_id)
    _done(tenant.id)
    return db.session.get(Agent, (tenant.id, user_id))


def settings_of(tenant) -> Settings:
    return db.session.get(Settings, tenant.id) or Settings(tenant_id=tenant.id, auto_assign=False)


def set_auto_assign(tenant, on: bool) -> None:
    row = db.session.get(Settings, tenant.id)
    if row is None:
        db.session.add(Settings(tenant_id=tenant.id, auto_assign=bool(on)))
    else:
        row.auto_assign = bool(on)
    db.session.commit()
    if on:
        _hand_out(tenant.id)
    _done(tenant.id)


def add_saved_reply(tenant, shortcut, body) -> SavedReply:
    if not isinstance(shortcut, str) or not 1 <= len(shortcut.strip()) <= 40 or "\x00" in shortcut:
        raise InvalidRequest("A shortcut is 1 to 40 characters.", details={"shortcut": ["1 to 40 characters."]})
    if not isinstance(body, str) or not 1 <= len(body.strip()) <= 4096 or "\x00" in body:
        raise InvalidRequest("A saved reply is 1 to 4096 characters.", details={"body": ["1 to 4096 characters."]})
    shortcut = shortcut.strip()
    if db.session.scalar(select(SavedReply.id).where(SavedReply.tenant_id == tenant.id,
                                                     SavedReply.shortcut == shortcut)):
        raise InvalidRequest("A saved reply with this shortcut exists.", details={"shortcut": ["Already used."]})
    row = SavedReply(tenant_id=tenant.id, shortcut=shortcut, body=body.strip())
    db.session.add(row)
    db.session.commit()
    return row


def saved_replies(tenant) -> list[SavedReply]:
    return list(db.session.scalars(select(SavedReply).where(SavedReply.tenant_id == tenant.id)
                                   .order_by(SavedReply.shortcut)))
