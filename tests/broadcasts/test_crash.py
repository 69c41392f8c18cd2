"""A broadcast worker killed with SIGKILL at random points: every recipient reaches WhatsApp at most
once, exactly once when its outcome is known, and the broadcast completes."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest

from saas.broadcasts.recovery import recover
from saas.extensions import db
from tests.broadcasts.helpers import Shop, run, sends_to
from tests.broadcasts.processes import run_worker

RECIPIENTS = 400
KILLS = 4


def database_url(app) -> str:
    with app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
        db.session.remove()
    return url


def kill_worker_after(app, graph, sends: int, seconds: float) -> None:
    """Start a worker process; SIGKILL it once WhatsApp has ``sends`` more sends (or after ``seconds``)."""
    before = len(graph.sends())
    child = multiprocessing.get_context("spawn").Process(target=run_worker, args=(database_url(app), graph.url, 25))
    child.start()
    try:
        deadline = time.monotonic() + seconds
        while len(graph.sends()) < before + sends and time.monotonic() < deadline and child.is_alive():
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)


def test_a_worker_killed_at_random_points_sends_no_one_twice(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(RECIPIENTS)
    broadcast_id = shop.create()
    shop.call("start", broadcast_id)
    graph.latency = 0.003  # each call takes a moment: kills land while calls are in flight
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    for _ in range(KILLS):
        kill_worker_after(app, graph, chance.randrange(0, RECIPIENTS // (KILLS + 1)), chance.uniform(1.0, 6.0))
        with app.app_context():
            # The worker is dead: its claims are abandoned at once.
            recover(db.session, older_than=timedelta(0))
            db.session.remove()
    graph.latency = 0.0
    run(app)
    sent = Counter(sends_to(graph))
    assert not [to for to, n in sent.items() if n > 1], f"sent twice (seed {seed})"
    recipients = shop.recipients(broadcast_id)
    assert {r.status for r in recipients} <= {"sent", "unknown"}, seed
    for recipient in recipients:
        if recipient.status == "sent":
            assert sent[recipient.wa_id] == 1, (recipient.wa_id, seed)
    assert all(sent[r.wa_id] <= 1 for r in recipients)
    assert shop.get(broadcast_id)["status"] == "completed"


def test_two_workers_on_one_broadcast_send_each_recipient_once(app, graph, backend):
    if backend != "postgresql":
        pytest.skip("two writers at once: PostgreSQL's SKIP LOCKED (SQLite runs one worker)")
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(300)
    broadcast_id = shop.create()
    shop.call("start", broadcast_id)
    graph.latency = 0.01  # batches take a while: the two workers' claims overlap
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    readies = [context.Event() for _ in range(2)]
    workers = [context.Process(target=run_worker, args=(database_url(app), graph.url, 10, ready, go))
               for ready in readies]
    for worker in workers:
        worker.start()
    assert all(ready.wait(60) for ready in readies)
    go.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    sent = Counter(sends_to(graph))
    assert len(sent) == 300 and max(sent.values()) == 1
    assert shop.get(broadcast_id)["counts"]["sent"] == 300
