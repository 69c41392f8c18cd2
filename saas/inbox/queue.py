"""Reading the inbox: the queue in the order customers are about to lose their window, threads, entries.

Open threads come soonest-closing window first (threads whose window has closed after every open one), then
the longest-waiting customer first; pending and resolved threads latest first. Every read is scoped to the
tenant; search matches the contact's name or number.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select

from saas.errors import InvalidRequest
from saas.extensions import db
from saas.inbox.models import OPEN, STATUSES, Entry, Thread
from saas.timeutil import utcnow

QUERY_MAX = 100
DIGITS = re.compile(r"[0-9]+")
ENTRIES_SHOWN = 200


def time_left(thread, now: datetime | None = None) -> timedelta | None:
    """How long the thread's free window stays open (None: it is closed, or never opened)."""
    now = now or utcnow()
    if thread.window_expires_at is None or thread.window_expires_at <= now:
        return None
    return thread.window_expires_at - now


def _filters(tenant_id: int, *, status: str | None, assignee, q: str | None) -> list:
    conditions = [Thread.tenant_id == tenant_id]
    if status is not None:
        if status not in STATUSES:
            raise InvalidRequest("'status' is open, pending or resolved.", details={"status": ["Unknown status."]})
        conditions.append(Thread.status == status)
    if assignee == "unassigned":
        conditions.append(Thread.assignee_id.is_(None))
    elif assignee is not None:
        conditions.append(Thread.assignee_id == assignee)
    if q:
        if not isinstance(q, str) or len(q) > QUERY_MAX or "\x00" in q:
            raise InvalidRequest(f"'q' is at most {QUERY_MAX} characters.", details={"q": ["Too long."]})
        digits = "".join(DIGITS.findall(q))
        term = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = [func.lower(Thread.name).like(f"%{term}%", escape="\\")]
        if len(digits) >= 3:
            matches.append(Thread.wa_id.like(f"%{digits}%"))
        conditions.append(or_(*matches))
    return conditions


def queue(tenant, *, status: str = OPEN, assignee=None, q: str | None = None, limit: int = 100,
          now: datetime | None = None) -> list[Thread]:
    """The tenant's threads as the queue shows them (see the module's docstring)."""
    now = now or utcnow()
    query = select(Thread).where(*_filters(tenant.id, status=status, assignee=assignee, q=q))
    if status == OPEN:
        closed = case((and_(Thread.window_expires_at.is_not(None), Thread.window_expires_at > now), 0), else_=1)
        query = query.order_by(closed, Thread.window_expires_at, Thread.waiting_since.is_(None), Thread.waiting_since,
                               Thread.id)
    else:
        query = query.order_by(Thread.last_message_at.is_(None), Thread.last_message_at.desc(), Thread.id.desc())
    return list(db.session.scalars(query.limit(limit)))


def page(tenant, *, status: str | None, assignee, q: str | None, limit: int, before: int | None) -> list[Thread]:
    """The API's listing: newest thread first, ``before`` a thread id (the cursor)."""
    query = select(Thread).where(*_filters(tenant.id, status=status, assignee=assignee, q=q))
    if before is not None:
        query = query.where(Thread.id < before)
    return list(db.session.scalars(query.order_by(Thread.id.desc()).limit(limit)))


def entries(tenant, thread, *, limit: int = ENTRIES_SHOWN) -> list[Entry]:
    """The thread's latest entries, in WhatsApp's order (the time each was written), oldest first."""
    rows = list(db.session.scalars(select(Entry).where(Entry.tenant_id == tenant.id, Entry.thread_id == thread.id)
                                   .order_by(Entry.at.desc(), Entry.id.desc()).limit(limit)))
    return rows[::-1]


def unread_total(tenant) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(Thread.unread), 0)).where(
        Thread.tenant_id == tenant.id, Thread.status == OPEN)) or 0
