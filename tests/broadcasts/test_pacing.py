"""Pacing within a number's rate, and turns taken fairly between running broadcasts."""
from __future__ import annotations

from collections import Counter

from saas.broadcasts.pacing import Pacing
from saas.broadcasts.runner import Runner
from saas.extensions import db
from saas.messaging.outbound import send_service
from tests.broadcasts.helpers import Shop, sends_to


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


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
