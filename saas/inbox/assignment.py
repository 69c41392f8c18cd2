"""Who answers a thread: manual assignment, or round robin among available agents, each under a cap.

Round robin: the available agent handed a thread longest ago, with fewer open threads than their cap, gets
the next one; when an agent frees up (resolves a thread, becomes available, has their cap raised) they are
handed the longest-waiting unassigned open threads first. Correct with any number of processes at once on
PostgreSQL: an agent's row is locked (FOR UPDATE SKIP LOCKED) while their open threads are counted and a
thread given, and a thread's row while it is taken (SKIP LOCKED, so two hand-outs never take the same one
and never wait on each other); a manual assignment takes the same locks. SQLite has one writer at a time.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from saas.inbox.models import OPEN, Agent, Settings, Thread
from saas.inbox.threads import log_event
from saas.timeutil import utcnow


def auto_assign_on(conn, tenant_id: int) -> bool:
    return bool(conn.execute(select(Settings.auto_assign).where(Settings.tenant_id == tenant_id)).scalar())


def open_count(conn, tenant_id: int, user_id: int) -> int:
    return conn.execute(select(func.count(Thread.id)).where(
        Thread.tenant_id == tenant_id, Thread.assignee_id == user_id, Thread.status == OPEN)).scalar()


def _agents_in_turn(conn, tenant_id: int, *, user_id: int | None = None):
    """Available agents, the one served longest ago first, each row locked as it is read (others skipped)."""
    query = (select(Agent.user_id, Agent.max_open).where(Agent.tenant_id == tenant_id, Agent.available.is_(True))
             .order_by(Agent.last_assigned_at.is_not(None), Agent.last_assigned_at, Agent.user_id)
             .with_for_update(skip_locked=True))
    if user_id is not None:
        query = query.where(Agent.user_id == user_id)
    return conn.execute(query).all()


def _give(conn, tenant_id: int, thread_id: int, user_id: int, now: datetime, *, by: int | None = None) -> None:
    conn.execute(update(Thread).where(Thread.id == thread_id, Thread.tenant_id == tenant_id).values(
        assignee_id=user_id, assigned_at=now, updated_at=now))
    conn.execute(update(Agent).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id)
                 .values(last_assigned_at=now))
    log_event(conn, tenant_id, thread_id, "assigned" + (" automatically" if by is None else ""), user_id=user_id,
              now=now)


def assign_thread(conn, tenant_id: int, thread_id: int, now: datetime | None = None) -> int | None:
    """Give the open, unassigned thread ``thread_id`` (its row locked by the caller) to the next agent with
    room; the agent's id, or None when every available agent is at their cap (the thread waits its turn)."""
    now = now or utcnow()
    for agent in _agents_in_turn(conn, tenant_id):
        if open_count(conn, tenant_id, agent.user_id) < agent.max_open:
            _give(conn, tenant_id, thread_id, agent.user_id, now)
            return agent.user_id
    return None


def hand_out(conn, tenant_id: int, *, user_id: int | None = None, now: datetime | None = None) -> list[int]:
    """Hand the longest-waiting unassigned open threads to available agents with room (only ``user_id``
    when given: the agent who just freed up); the ids of the threads given, in the order given. Call it in
    a transaction of its own: it holds agent and thread rows until the caller commits."""
    now = now or utcnow()
    given = []
    for agent in _agents_in_turn(conn, tenant_id, user_id=user_id):
        room = agent.max_open - open_count(conn, tenant_id, agent.user_id)
        if room <= 0:
            continue
        waiting = conn.execute(select(Thread.id).where(
            Thread.tenant_id == tenant_id, Thread.status == OPEN, Thread.assignee_id.is_(None))
            .order_by(Thread.waiting_since.is_(None), Thread.waiting_since, Thread.id).limit(room)
            .with_for_update(skip_locked=True)).scalars().all()
        for thread_id in waiting:
            _give(conn, tenant_id, thread_id, agent.user_id, now)
            given.append(thread_id)
    return given


def assign_to(conn, tenant_id: int, thread_id: int, user_id: int | None, *, by: int,
              now: datetime | None = None) -> None:
    """Assign by hand (None: unassign). A manual assignment may go past the agent's cap: a person decided.
    Locks the agent's row as round robin does, so the two never count the same agent's threads at once."""
    now = now or utcnow()
    if user_id is None:
        conn.execute(update(Thread).where(Thread.id == thread_id, Thread.tenant_id == tenant_id).values(
            assignee_id=None, assigned_at=None, updated_at=now))
        log_event(conn, tenant_id, thread_id, "unassigned", user_id=by, now=now)
        return
    conn.execute(select(Agent.user_id).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id)
                 .with_for_update())
    _give(conn, tenant_id, thread_id, user_id, now, by=by)
