"""Pacing within a number's rate, and turns taken fairly between running broadcasts."""
from __future__ import annotations

from collections import Counter

import pytest

from saas.broadcasts.pacing import MAX_PAUSE, Pacing, Yielding
from saas.broadcasts.runner import Runner
from saas.extensions import db
from saas.messaging.outbound import send_service
from tests.broadcasts.helpers import Shop, sends_to


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Schedstat:
    """A thread's scheduler statistics as the kernel writes them: ns on a CPU, ns waiting for one, slices."""

    def __init__(self, path):
        self.path = path
        self.waited = 0.0
        self.write()

    def wait(self, seconds: float) -> None:
        self.waited += seconds
        self.write()

    def write(self) -> None:
        self.path.write_text(f"123456 {round(self.waited * 1e9)} 42\n")


def test_a_worker_pauses_after_a_batch_that_waited_for_the_cpu_as_long_as_it_waited(tmp_path):
    clock, stat, pauses = Clock(), Schedstat(tmp_path / "schedstat"), []
    yielding = Yielding(0.5, path=str(stat.path), clock=clock, sleep=pauses.append)
    assert yielding.after_batch() == 0            # the first batch has nothing to compare with
    clock.now += 1.0
    stat.wait(0.3)                                # 30% of the batch waiting: the cores were not wanted much
    assert yielding.after_batch() == 0
    clock.now += 1.0
    stat.wait(0.6)                                # 60%: others wanted them
    assert yielding.after_batch() == pytest.approx(0.6) and pauses == [pytest.approx(0.6)]
    clock.now += 4.0
    stat.wait(3.0)
    assert yielding.after_batch() == MAX_PAUSE and yielding.paused == pytest.approx(0.6 + MAX_PAUSE)


def test_yielding_is_off_at_share_zero_and_where_the_kernel_does_not_say(tmp_path):
    clock, stat, pauses = Clock(), Schedstat(tmp_path / "schedstat"), []
    off = Yielding(0, path=str(stat.path), clock=clock, sleep=pauses.append)
    blind = Yielding(0.5, path=str(tmp_path / "absent"), clock=clock, sleep=pauses.append)
    for _ in range(3):
        clock.now += 1.0
        stat.wait(1.0)
        assert off.after_batch() == 0 and blind.after_batch() == 0
    assert pauses == []


def test_the_worker_pauses_between_batches_while_the_cores_are_wanted_and_sends_all(app, graph, tmp_path):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(10)
    shop.call("start", shop.create())
    stat, clock, pauses = Schedstat(tmp_path / "schedstat"), Clock(), []

    def busy_machine():                           # every second, 0.9 s of it waiting for a CPU
        clock.now += 1.0
        stat.wait(0.9)
        return clock.now

    with app.app_context():
        runner = Runner(db.session, send_service(app), batch=3, pacing=Pacing(enabled=False),
                        yielding=Yielding(0.5, path=str(stat.path), clock=busy_machine, sleep=pauses.append))
        assert runner.run(until_idle=True) == 10
        db.session.remove()
    assert len(sends_to(graph)) == 10
    assert len(pauses) == 3 and pauses[0] == pytest.approx(0.9)   # after each batch but the first


def test_a_number_sends_at_its_rate_and_never_more_than_a_second_of_burst():
    clock = Clock()
    pacing = Pacing(clock=clock)
    assert pacing.take(1, 80, 100) == 0           # it starts at its rate, not with a burst
    assert pacing.wait(1) == 1 / 80
    clock.now += 0.5
    assert pacing.take(1, 80, 100) == 40
    assert pacing.take(1, 80, 100) == 0
    clock.now += 10
    assert pacing.take(1, 80, 1000) == 80         # never more than a second's worth at once
    assert pacing.take(2, 1000, 100) == 0         # another number has its own bucket
    clock.now += 1
    assert pacing.take(2, 1000, 100) == 100
    half = Pacing(clock=clock, share=0.5)
    half.take(1, 80, 100)
    clock.now += 1
    assert half.take(1, 80, 100) == 40


def test_each_running_broadcast_gets_a_turn_in_every_pass(app, graph):
    first, second = Shop(app, graph), Shop(app, graph)
    for shop in (first, second):
        shop.template()
        shop.contacts(10, prefix="90532" if shop is first else "90533")
        shop.call("start", shop.create())
    with app.app_context():
        runner = Runner(db.session, send_service(app), batch=3, pacing=Pacing(enabled=False))
        runner.pass_once()   # writes both audiences down, then a batch of each
        db.session.remove()
    by_tenant = Counter(to[:5] for to in sends_to(graph))
    assert by_tenant == {"90532": 3, "90533": 3}


def test_a_paced_broadcast_waits_for_its_numbers_bucket(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(10)
    shop.call("start", shop.create(messages_per_second=4))
    clock = Clock()
    with app.app_context():
        runner = Runner(db.session, send_service(app), batch=100, pacing=Pacing(clock=clock))
        assert runner.pass_once() == (0, 0.25)    # written down; the bucket starts empty
        clock.now += 1
        claimed, _ = runner.pass_once()
        assert (claimed, len(sends_to(graph))) == (4, 4)
        assert runner.pass_once() == (0, 0.25)
        clock.now += 0.5
        assert runner.pass_once()[0] == 2
        db.session.remove()
