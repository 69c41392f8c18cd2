"""Domain events (saas.events, saas.outbox): written in the transaction of their change, handed to consumers
subscribed from anywhere after it commits, at least once, in order per stream, whoever delivers them.

Consumers here are subscribed by the tests themselves: nothing in saas/ knows them. A crash between a
commit and its delivery is a transaction committed in a thread that then ends without delivering (the
process-killing version is in tests/messaging/test_domain_events.py).
"""
from __future__ import annotations

import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from saas import events, outbox
from saas.events import Event
from saas.extensions import db
from saas.outbox import OutboxEvent
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests.factories import make_tenant

HAPPENED = "test.happened"


class Recorder:
    """A consumer: the events it took, in order; ``failing`` maps an event's ``n`` to how many of its tries
    the consumer refuses (None: every one). A refused try is the whole call: the batch with it, or it alone."""

    def __init__(self, failing=None):
        self.got: list[Event] = []
        self.failing = dict(failing or {})

    def __call__(self, conn, given):
        for event in given:
            n = event.payload["n"]
            if n in self.failing and self.failing[n] != 0:
                if self.failing[n] is not None:
                    self.failing[n] -= 1
                raise RuntimeError(f"consumer refuses {n}")
        self.got.extend(given)

    @property
    def seen(self) -> list:
        return [event.payload["n"] for event in self.got]


@pytest.fixture
def subscribe():
    """subscribe(recorder, name=...) for this test only."""
    names = []

    def add(recorder, name="tests.recorder", types=(HAPPENED,), serves=None):
        events.subscribe(types, recorder, name=name, serves=serves)
        names.append(name)
        return recorder

    yield add
    for name in names:
        events.unsubscribe(name)


@pytest.fixture
def tenant_id(app):
    with app.app_context():
        tenant_id = make_tenant("free").id
        db.session.remove()
    return tenant_id


def happened(tenant_id, stream, n) -> Event:
    return Event(HAPPENED, tenant_id, stream, {"n": n})


def publish_and_deliver(app, tenant_id, *items) -> int:
    """Publish (stream, n) items in one transaction, commit, deliver as publishers do."""
    with app.app_context():
        events.publish(db.session.connection(), [happened(tenant_id, stream, n) for stream, n in items])
        delivered = events.commit(db.session)
        db.session.remove()
    return delivered


def publish_and_die(app, tenant_id, *items) -> None:
    """Publish and commit in a thread that ends before its after-commit step, as a process killed there."""
    def run():
        with app.app_context():
            events.publish(db.session.connection(), [happened(tenant_id, stream, n) for stream, n in items])
            db.session.commit()
            db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def in_outbox(app) -> list[OutboxEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def sweep(app, *, after: float = 0, **kwargs) -> int:
    with app.app_context():
        delivered = events.sweep(older_than=timedelta(0), now=utcnow() + timedelta(seconds=after), **kwargs)
        db.session.remove()
    return delivered


def test_an_event_is_written_in_its_changes_transaction_and_a_rolled_back_change_leaves_none(
        app, subscribe, tenant_id):
    recorder = subscribe(Recorder())
    with app.app_context():
        db.session.get(Tenant, tenant_id).name = "Renamed"
        events.publish(db.session.connection(), [happened(tenant_id, "a", 1)])
        db.session.rollback()
        assert events.commit(db.session) == 0
        assert db.session.get(Tenant, tenant_id).name != "Renamed"
        db.session.remove()
    assert in_outbox(app) == [] and recorder.got == []
    assert sweep(app, after=60) == 0
    assert recorder.got == []


def test_events_reach_a_consumer_subscribed_from_outside_once_their_change_is_committed(app, subscribe, tenant_id):
    seen_by_others = []

    def consumer(conn, given):
        # Another connection sees the change: it was committed before the event was handed over. (A plain
        # DBAPI read: SQLite's write lock, which the delivering transaction holds, is taken at BEGIN.)
        other = db.engine.raw_connection()
        try:
            cursor = other.cursor()
            cursor.execute(f"SELECT name FROM tenants WHERE id = {int(tenant_id)}")
            seen_by_others.append(cursor.fetchone()[0])
        finally:
            other.close()
        recorder(conn, given)

    recorder = Recorder()
    subscribe(consumer)
    with app.app_context():
        db.session.get(Tenant, tenant_id).name = "Renamed"
        events.publish(db.session.connection(), [happened(tenant_id, "a", 1), happened(tenant_id, "b", 2)])
        assert recorder.got == []  # nothing before the commit
        assert events.commit(db.session) == 2
        db.session.remove()
    assert seen_by_others == ["Renamed"]
    assert recorder.seen == [1, 2]
    first = recorder.got[0]
    assert (first.type, first.tenant_id, first.stream) == (HAPPENED, tenant_id, "a")
    assert first.id is not None and first.id < recorder.got[1].id and first.created_at is not None
    assert in_outbox(app) == []
    assert sweep(app, after=60) == 0 and recorder.seen == [1, 2]


def test_an_event_no_consumer_subscribes_to_is_not_written(app, subscribe, tenant_id):
    subscribe(Recorder(), types=("test.other",))
    with app.app_context():
        assert events.publish(db.session.connection(), [happened(tenant_id, "a", 1)]) == 0
        db.session.commit()
        db.session.remove()
    assert in_outbox(app) == []


def test_an_event_of_a_tenant_no_consumer_serves_is_not_written(app, subscribe, tenant_id):
    with app.app_context():
        other_id = make_tenant("free").id
        db.session.remove()
    recorder = subscribe(Recorder(), serves=lambda conn, tenant_ids: {t for t in tenant_ids if t == other_id})
    with app.app_context():
        assert events.publish(db.session.connection(), [happened(tenant_id, "a", 1), happened(other_id, "b", 2)]) == 1
        assert [row.payload["n"] for row in db.session.scalars(select(OutboxEvent))] == [2]
        assert events.commit(db.session) == 1
        db.session.remove()
    assert recorder.seen == [2]


def test_the_sweep_delivers_what_a_crash_after_commit_left_once_it_is_old_enough(app, subscribe, tenant_id):
    recorder = subscribe(Recorder())
    publish_and_die(app, tenant_id, ("a", 1), ("b", 2), ("a", 3))
    assert [row.payload["n"] for row in in_outbox(app)] == [1, 2, 3]
    assert recorder.got == []
    with app.app_context():
        assert events.sweep() == 0  # younger than SWEEP_AFTER: its own process may still deliver it
        db.session.remove()
    assert sweep(app, after=events.SWEEP_AFTER.total_seconds() + 1, limit=1) == 3
    assert recorder.seen == [1, 2, 3]
    assert in_outbox(app) == []
    assert sweep(app, after=60) == 0 and recorder.seen == [1, 2, 3]


def test_a_later_event_of_a_stream_waits_while_an_earlier_one_fails_and_others_go_on(app, subscribe, tenant_id):
    flaky = subscribe(Recorder(failing={1: 2}), name="tests.flaky")  # the batch, then it alone
    steady = subscribe(Recorder(), name="tests.steady")
    assert publish_and_deliver(app, tenant_id, ("a", 1), ("a", 2), ("b", 3)) == 1
    assert flaky.seen == [3]          # "a" waits behind its failed first event
    assert steady.seen == [1, 2, 3]   # another consumer is not held up by this one's failure
    kept = {row.payload["n"]: row for row in in_outbox(app)}
    assert sorted(kept) == [1, 2]
    assert (kept[1].attempts, kept[1].owed) == (1, "tests.flaky") and "consumer refuses 1" in kept[1].last_error
    assert kept[1].next_try_at > utcnow()
    assert (kept[2].attempts, kept[2].owed, kept[2].next_try_at) == (0, "tests.flaky", None)

    # A new event of "a", delivered by its publisher at once, still waits; so does the sweep until the backoff ends.
    assert publish_and_deliver(app, tenant_id, ("a", 4), ("c", 5)) == 1
    assert sweep(app) == 0
    assert (flaky.seen, steady.seen) == ([3, 5], [1, 2, 3, 5])
    assert sweep(app, after=outbox.RETRY_SECONDS[0] + 1) == 3
    assert flaky.seen == [3, 5, 1, 2, 4]
    assert steady.seen == [1, 2, 3, 5, 4]  # 1 and 2 once: it never owed them again
    assert in_outbox(app) == []


def test_flask_events_sweep_delivers_what_a_crash_left(app, runner, subscribe, tenant_id):
    recorder = subscribe(Recorder())
    publish_and_die(app, tenant_id, ("a", 1))
    assert runner.invoke(args=["events", "sweep"]).output == "Delivered 0 events.\n"  # too fresh
    assert runner.invoke(args=["events", "sweep", "--older-than", "0"]).output == "Delivered 1 events.\n"
    assert recorder.seen == [1]


def test_an_event_failing_every_try_is_dead_after_the_last_and_its_stream_goes_on(
        app, runner, subscribe, tenant_id):
    recorder = subscribe(Recorder(failing={1: None}))
    publish_and_die(app, tenant_id, ("a", 1), ("a", 2))
    waited = 0
    for wait in (0, *outbox.RETRY_SECONDS):
        waited += wait + 1
        assert sweep(app, after=waited) == 0
    (dead, ) = [row for row in in_outbox(app) if row.dead_at is not None]
    assert (dead.payload["n"], dead.attempts) == (1, outbox.MAX_ATTEMPTS)
    assert recorder.seen == []
    assert sweep(app, after=waited) == 1
    assert recorder.seen == [2]
    listed = runner.invoke(args=["events", "dead"]).output
    assert listed.startswith(f"{dead.id}\t{HAPPENED}\ta\tdead ") and "consumer refuses 1" in listed


def test_discover_imports_every_consumers_module_so_a_new_consumer_edits_nothing(app, tmp_path, monkeypatch):
    package = tmp_path / "elsewhere_pkg"
    (package / "automation").mkdir(parents=True)  # a namespace package, as messaging's rooms are
    (package / "__init__.py").write_text("")
    (package / "automation" / "consumers.py").write_text(
        "from saas import events\n\n\ndef react(conn, given):\n    pass\n\n\n"
        f"events.subscribe({HAPPENED!r}, react, name='elsewhere.react')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert events.discover("elsewhere_pkg") == ["elsewhere_pkg.automation.consumers"]
        assert "elsewhere.react" in {consumer.name for consumer in events.consumers()}
    finally:
        events.unsubscribe("elsewhere.react")
        for name in [m for m in sys.modules if m.startswith("elsewhere_pkg")]:
            del sys.modules[name]
    assert "saas.messaging.tenant_webhooks.consumers" in events.discover("saas")
    assert "tenant_webhooks.forwarding" in {consumer.name for consumer in events.consumers()}


# -- the deliverer: a request hands its events to a thread of its process --------------------------

@pytest.fixture
def in_background(app):
    """Requests hand their events to the app's deliverer (as the web processes do); yields it."""
    app.config["EVENTS_IN_BACKGROUND"] = True
    deliverer = app.extensions.setdefault("event_deliverer", events.Deliverer(app))
    yield deliverer
    assert deliverer.join(10)
    app.config["EVENTS_IN_BACKGROUND"] = False


class Held(Recorder):
    """A recorder whose first call waits until the test lets it go (``go``), saying when it started."""

    def __init__(self):
        super().__init__()
        self.calls: list[list[int]] = []
        self.started, self.go = threading.Event(), threading.Event()

    def __call__(self, conn, given):
        self.calls.append([event.payload["n"] for event in given])
        self.started.set()
        assert self.go.wait(10)
        super().__call__(conn, given)


def publish_in_request(app, tenant_id, *items) -> int:
    with app.test_request_context():
        events.publish(db.session.connection(), [happened(tenant_id, stream, n) for stream, n in items])
        delivered = events.commit(db.session)
        db.session.remove()
    return delivered


def test_a_requests_events_are_delivered_by_the_deliverer_after_it_answers(app, subscribe, tenant_id, in_background):
    held = subscribe(Held())
    # The commit returns while the consumer is still held: the request does not wait for it.
    assert publish_in_request(app, tenant_id, ("a", 1), ("b", 2)) == 0
    assert held.started.wait(10)
    assert held.got == []
    held.go.set()
    assert in_background.join(10)
    assert held.seen == [1, 2] and in_outbox(app) == []
    assert sweep(app, after=60) == 0 and held.seen == [1, 2]


def test_outside_a_request_events_are_delivered_before_commit_returns(app, subscribe, tenant_id, in_background):
    recorder = subscribe(Recorder())
    assert publish_and_deliver(app, tenant_id, ("a", 1)) == 1  # a job, the CLI, a send service's thread
    assert recorder.seen == [1]


def test_a_consumer_failing_in_the_deliverer_leaves_its_events_to_the_sweep(app, subscribe, tenant_id, in_background):
    flaky = subscribe(Recorder(failing={1: 2}))
    assert publish_in_request(app, tenant_id, ("a", 1), ("a", 2), ("b", 3)) == 0
    assert in_background.join(10)
    assert flaky.seen == [3]
    assert sorted(row.payload["n"] for row in in_outbox(app)) == [1, 2]
    assert sweep(app, after=outbox.RETRY_SECONDS[0] + 1) == 2
    assert flaky.seen == [3, 1, 2]


def test_commits_made_while_the_deliverer_works_are_delivered_together_in_its_next_round(
        app, subscribe, tenant_id, in_background):
    if db_backend(app) != "postgresql":
        pytest.skip("SQLite's write lock, held by the delivering transaction, would keep the publishers out")
    held = subscribe(Held())
    publish_in_request(app, tenant_id, ("first", 0))
    assert held.started.wait(10)
    for n in range(1, 21):  # twenty requests while the first delivery is held
        assert publish_in_request(app, tenant_id, (f"s{n}", n)) == 0
    held.go.set()
    assert in_background.join(10)
    assert held.calls == [[0], list(range(1, 21))]
    assert sorted(held.seen) == list(range(21)) and in_outbox(app) == []


# -- two processes sweeping at once (PostgreSQL: real row locks) ---------------------------------

def test_two_sweepers_racing_give_each_event_to_each_consumer_once_in_stream_order(app, subscribe, tenant_id):
    if db_backend(app) != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL with real parallel connections")
    inside = {name: threading.Event() for name in ("first", "second")}
    met = []

    class Racing(Recorder):
        def __call__(self, conn, given):
            me = threading.current_thread().name
            if me in inside and not inside[me].is_set():
                # Both sweepers hold claims at the same moment, or this waits in vain.
                inside[me].set()
                met.append(inside["second" if me == "first" else "first"].wait(10))
            with lock:
                super().__call__(conn, given)

    lock = threading.Lock()
    one, two = subscribe(Racing(), name="tests.one"), subscribe(Racing(), name="tests.two")
    streams = [f"s{i}" for i in range(20)]
    publish_and_die(app, tenant_id, *[(stream, f"{i}.{round_}") for round_ in range(5)
                                      for i, stream in enumerate(streams)])

    def sweeper():
        with app.app_context():
            events.sweep(older_than=timedelta(0), limit=7, rounds=100)
            db.session.remove()

    threads = [threading.Thread(target=sweeper, name=name) for name in inside]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sweep(app, rounds=100)
    assert met == [True, True]
    everything = sorted((i, round_) for round_ in range(5) for i in range(20))
    for consumer in (one, two):
        taken = [tuple(int(part) for part in n.split(".")) for n in consumer.seen]
        assert sorted(taken) == everything  # each once
        for i in range(20):
            assert [r for j, r in taken if j == i] == list(range(5))  # each stream in order
    assert in_outbox(app) == []


def db_backend(app) -> str:
    with app.app_context():
        name = db.engine.dialect.name
    return name
