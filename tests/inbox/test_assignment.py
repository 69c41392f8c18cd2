"""Assignment: round robin among available agents under their caps, the longest-waiting thread first when an
agent frees up, manual assignment; and on PostgreSQL the same with real parallel connections."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from saas.extensions import db
from saas.inbox import actions, assignment
from saas.inbox.models import Agent, Settings, Thread
from saas.inbox.threads import record_inbound
from saas.tenants.models import Tenant

from tests.factories import make_tenant
from tests.inbox.helpers import add_member
from tests.messaging.live import live_number

START = 1_900_000_000


def setting(app, graph, *, agents: int, cap: int, auto: bool = True):
    """A Starter tenant with ``agents`` available agents capped at ``cap`` open threads each."""
    with app.app_context():
        tenant = make_tenant("pro")
        tenant_id = tenant.id
        db.session.remove()
    _, number_pk, _, _ = live_number(app, graph, tenant_id)
    user_ids = [add_member(app, tenant_id, f"agent{n}@t{tenant_id}.example.com", "agent") for n in range(agents)]
    with app.app_context():
        for user_id in user_ids:
            db.session.add(Agent(tenant_id=tenant_id, user_id=user_id, available=True, max_open=cap))
        db.session.add(Settings(tenant_id=tenant_id, auto_assign=auto))
        db.session.commit()
        db.session.remove()
    return tenant_id, number_pk, user_ids


def inbound(app, tenant_id, number_pk, n: int, *, assign: bool = True) -> int:
    """Customer ``n`` writes (at START + n seconds: a lower n has waited longer); the thread's id."""
    with app.app_context():
        conn = db.session.connection()
        touched = record_inbound(conn, tenant_id, number_pk, f"1650555{n:04d}", f"wamid.rr-{tenant_id}-{n}",
                                 {"type": "text", "text": {"body": "hi"}, "timestamp": str(START + n)}, None)
        if assign and touched.assignee_id is None and assignment.auto_assign_on(conn, tenant_id):
            assignment.assign_thread(conn, tenant_id, touched.thread_id)
        db.session.commit()
        db.session.remove()
    return touched.thread_id


def assignees(app, tenant_id) -> dict[int, int | None]:
    with app.app_context():
        rows = dict(db.session.execute(select(Thread.id, Thread.assignee_id)
                                       .where(Thread.tenant_id == tenant_id)).all())
        db.session.remove()
    return rows


def test_round_robin_respects_caps_and_the_oldest_waits_least_when_an_agent_frees_up(app, graph):
    tenant_id, number_pk, (a, b) = setting(app, graph, agents=2, cap=2)
    threads = [inbound(app, tenant_id, number_pk, n) for n in range(6)]
    given = assignees(app, tenant_id)
    assert [given[t] for t in threads[:4]] == [a, b, a, b]  # in turn
    assert given[threads[4]] is None and given[threads[5]] is None  # both at their cap: waiting
    with app.app_context():
        actions.set_status(db.session.get(Tenant, tenant_id), threads[0], "resolved", user_id=a)
        db.session.remove()
    given = assignees(app, tenant_id)
    assert given[threads[4]] == a and given[threads[5]] is None  # the longest waiting first


def test_an_agent_becoming_available_takes_the_longest_waiting_threads(app, graph):
    tenant_id, number_pk, (a,) = setting(app, graph, agents=1, cap=2)
    with app.app_context():
        db.session.get(Agent, (tenant_id, a)).available = False
        db.session.commit()
        db.session.remove()
    threads = [inbound(app, tenant_id, number_pk, n) for n in (5, 1, 3)]
    with app.app_context():
        actions.set_availability(db.session.get(Tenant, tenant_id), a, available=True)
        db.session.remove()
    given = assignees(app, tenant_id)
    assert (given[threads[1]], given[threads[2]], given[threads[0]]) == (a, a, None)


def test_manual_assignment_needs_a_member_who_answers_the_inbox(app, graph, client):
    tenant_id, number_pk, (a,) = setting(app, graph, agents=1, cap=1, auto=False)
    developer = add_member(app, tenant_id, f"dev@t{tenant_id}.example.com", "developer")
    thread_id = inbound(app, tenant_id, number_pk, 1)
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        assert actions.assign(tenant, thread_id, a, by=a).assignee_id == a
        with pytest.raises(Exception) as refused:
            actions.assign(tenant, thread_id, developer, by=a)
        assert getattr(refused.value, "code", None) == "not_found"
        db.session.remove()


@pytest.mark.postgres_only
def test_parallel_hand_outs_never_pass_a_cap_nor_give_a_thread_twice(backend, app, graph):
    if backend != "postgresql":
        pytest.skip("real parallel connections: PostgreSQL only")
    tenant_id, number_pk, agents = setting(app, graph, agents=4, cap=3)
    threads = [inbound(app, tenant_id, number_pk, n, assign=False) for n in range(20)]
    start, errors = threading.Barrier(8), []

    def worker(agent):
        # Two workers per agent (an agent freeing up in two processes at once), all four agents at once.
        try:
            with app.app_context():
                start.wait(10)
                for _ in range(3):
                    assignment.hand_out(db.session.connection(), tenant_id, user_id=agent)
                    db.session.commit()
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(agents[n % 4],)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert errors == []
    given = assignees(app, tenant_id)
    per_agent = {agent: sum(1 for t in threads if given[t] == agent) for agent in agents}
    assert per_agent == {agent: 3 for agent in agents}
    # The twelve given are the twelve that waited longest.
    assert {t for t in threads if given[t] is not None} == set(threads[:12])
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(Thread).where(Thread.tenant_id == tenant_id,
                                                                                  Thread.assignee_id.is_not(None)))
        db.session.remove()
    assert events == 12


@pytest.mark.postgres_only
def test_parallel_inbound_round_robin_keeps_every_cap(backend, app, graph):
    if backend != "postgresql":
        pytest.skip("real parallel connections: PostgreSQL only")
    tenant_id, number_pk, agents = setting(app, graph, agents=3, cap=2)
    start, errors, numbers = threading.Barrier(6), [], iter(range(12))
    lock = threading.Lock()

    def worker():
        try:
            start.wait(10)
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                inbound(app, tenant_id, number_pk, n)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert errors == []
    given = assignees(app, tenant_id)
    counts = {agent: list(given.values()).count(agent) for agent in agents}
    assert all(count <= 2 for count in counts.values()), counts
    assert sum(counts.values()) <= 6
