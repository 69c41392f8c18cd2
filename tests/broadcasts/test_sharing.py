"""The worker sharing the machine and the database: its session's priority lowered (autogroup), giving way
to others at work in the database (Deference), and lanes: batches sent side by side."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from saas.broadcasts.pacing import (
    MAX_DEFERENCE, WORKER_APPLICATION, AtWork, Deference, Pacing, at_work, worker_application,
)
from saas.broadcasts.runner import Runner
from saas.broadcasts.worker import worker_runner
from saas.extensions import db
from saas.messaging.outbound import send_service
from tests.broadcasts.helpers import Shop, sends_to


def test_a_worker_keeps_its_share_of_pace_while_others_are_at_work():
    pauses, busy = [], [3]
    deference = Deference(0.2, lambda: AtWork(busy[0]), sleep=pauses.append)
    assert deference.after_batch(0.1) == pytest.approx(0.4)       # 0.1 s sending, 0.4 s paused: a fifth
    assert deference.after_batch(10.0) == MAX_DEFERENCE             # never more than MAX_DEFERENCE at once
    busy[0] = 0
    assert deference.after_batch(0.1) == 0                          # nobody else at work: full speed
    assert Deference(1, lambda: AtWork(3), sleep=pauses.append).after_batch(0.1) == 0   # 1: never gives way
    assert pauses == [pytest.approx(0.4), MAX_DEFERENCE]
    assert deference.paused == pytest.approx(0.4 + MAX_DEFERENCE)


def test_workers_together_keep_the_share_of_one_workers_pace():
    pauses = []
    three = Deference(0.2, lambda: AtWork(others=4, workers=3), sleep=pauses.append)
    assert three.after_batch(0.1) == pytest.approx(1.4)             # 0.1 s of 1.5: a fifteenth each, a fifth together
    assert Deference(0.2, lambda: AtWork(others=0, workers=3), sleep=pauses.append).after_batch(0.1) == 0
    assert Deference(0.2, lambda: AtWork(others=2, workers=0), sleep=pauses.append).after_batch(0.1) == \
        pytest.approx(0.4)                                          # never fewer than itself
    assert pauses == [pytest.approx(1.4), pytest.approx(0.4)]


def test_others_at_work_are_other_sessions_in_a_transaction_but_not_broadcast_workers(app, backend):
    with app.app_context():
        if backend != "postgresql":
            assert at_work(db.session).others == 0                  # SQLite does not say: never gives way
            return
        url = db.engine.url.render_as_string(hide_password=False)
        assert at_work(db.session).others == 0
        assert at_work(db.session) == AtWork(0, 1)                 # no worker connected: counts as one
        other = create_engine(url)
        worker = create_engine(url, connect_args={"application_name": worker_application(101)})
        second = create_engine(url, connect_args={"application_name": worker_application(102)})
        try:
            with worker.connect() as named, worker.connect() as lane, second.connect() as idle:
                named.execute(text("SELECT 1"))                    # another worker, mid-transaction
                lane.execute(text("SELECT 1"))                     # its second connection: still one worker
                idle.execute(text("SELECT 1"))
                idle.commit()                                      # a second worker, connected, idle
                assert at_work(db.session).others == 0
                assert at_work(db.session) == AtWork(0, 2)
                with other.connect() as web:
                    web.execute(text("SELECT 1"))                  # a request's transaction, open
                    assert at_work(db.session) == AtWork(1, 2)
            assert at_work(db.session).others == 0
        finally:
            other.dispose()
            worker.dispose()
            second.dispose()
        db.session.remove()


def test_the_worker_pauses_after_each_batch_while_others_are_at_work_and_sends_all(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(10)
    shop.call("start", shop.create())
    pauses = []
    with app.app_context():
        runner = Runner(db.session, send_service(app), batch=3, pacing=Pacing(enabled=False),
                        deference=Deference(0.5, lambda: AtWork(1), sleep=pauses.append))
        assert runner.run(until_idle=True) == 10
        db.session.remove()
    assert sorted(Counter(sends_to(graph)).values()) == [1] * 10
    assert len(pauses) == 4 and all(p > 0 for p in pauses)            # after each of the batches of 3, 3, 3, 1


@contextmanager
def lane_session(app):
    with app.app_context():
        try:
            yield db.session
        finally:
            db.session.remove()


def test_lanes_send_batches_side_by_side_each_recipient_once(app, graph, backend):
    if backend != "postgresql":
        pytest.skip("two writers at once: PostgreSQL's SKIP LOCKED (SQLite has one writer; the worker runs one lane)")
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(200)
    broadcast_id = shop.create()
    shop.call("start", broadcast_id)
    graph.latency = 0.01  # batches take a while: the lanes' claims overlap
    opened = []

    def lane(app):
        opened.append(threading.current_thread().name)
        return lane_session(app)

    with app.app_context():
        runner = Runner(db.session, send_service(app), batch=10, pacing=Pacing(enabled=False), lanes=3,
                        lane_session=lambda: lane(app))
        assert runner.run(until_idle=True) == 200
        db.session.remove()
    assert len(opened) == 2 and all(name.startswith("broadcast-lane") for name in opened)   # two more lanes
    sent = Counter(sends_to(graph))
    assert len(sent) == 200 and set(sent.values()) == {1}
    assert {r.status for r in shop.recipients(broadcast_id)} == {"sent"}
    assert shop.get(broadcast_id)["status"] == "completed"


def test_the_worker_process_names_its_connections_and_runs_its_lanes(app, backend):
    lanes, app.config["BROADCAST_WORKER_LANES"] = app.config["BROADCAST_WORKER_LANES"], 3
    try:
        with app.app_context():
            runner = worker_runner(app)
            if backend == "postgresql":
                assert runner.lanes == 3
                assert db.session.execute(text("SHOW application_name")).scalar() == f"{WORKER_APPLICATION} {os.getpid()}"
            else:
                assert runner.lanes == 1                            # one writer: one lane
            assert runner.deference is not None and runner.deference.share == 1   # the tests' setting
            db.session.remove()
    finally:
        app.config["BROADCAST_WORKER_LANES"] = lanes


LEAD_A_SESSION = """
from saas.broadcasts.worker import AUTOGROUP, lower_session_priority
print(lower_session_priority(7), open(AUTOGROUP).read().split()[-1], lower_session_priority(3))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="no autogroup scheduling here")
def test_a_worker_leading_its_session_lowers_the_sessions_priority_and_one_sharing_it_does_not():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", LEAD_A_SESSION], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, start_new_session=True, timeout=60)
    assert done.stdout.split() == ["True", "7", "False"], done.stderr   # never raised back to 3
    if os.getsid(0) == os.getpid():
        return                                                         # this runner leads its own session
    before = Path("/proc/self/autogroup").read_text()
    from saas.broadcasts.worker import lower_session_priority

    assert lower_session_priority(7) is False                          # the test runner's session is shared
    assert Path("/proc/self/autogroup").read_text() == before
