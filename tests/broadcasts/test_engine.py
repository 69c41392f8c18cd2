"""The engine end to end against the loopback Graph API: what the check counts is what is sent, each
recipient once, with its own variables."""
from __future__ import annotations

from collections import Counter

from tests.broadcasts.helpers import Shop, run, sends_to


def test_the_checks_counts_equal_what_is_sent(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(30)
    shop.contacts(3, start=100, consent=None)            # no opt-in
    shop.contacts(2, start=200, consent="opted_out")     # opted out
    shop.contacts(2, start=300, prefix="1202555", digits=4)        # +1: Meta delivers no marketing there
    broadcast_id = shop.create()
    check = shop.get(broadcast_id)["check"]
    assert check["audience"] == 37
    assert check["recipients"] == 30
    assert check["dropped"]["by_reason"]["no_opt_in"] == 3
    assert check["dropped"]["by_reason"]["opted_out"] == 2
    assert check["dropped"]["by_reason"]["marketing_to_us_number"] == 2
    shop.call("start", broadcast_id)
    run(app)
    sent = sends_to(graph)
    assert len(sent) == check["recipients"]
    assert Counter(sent).most_common(1)[0][1] == 1
    found = shop.get(broadcast_id)
    assert found["status"] == "completed"
    assert found["counts"]["sent"] == 30 and found["counts"]["skipped"] == 7


def test_each_recipient_gets_its_own_variables_and_the_default_for_an_empty_field(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(2, name=lambda i: "Ayşe" if i == 0 else None)
    broadcast_id = shop.create()
    shop.call("start", broadcast_id)
    run(app)
    bodies = {b["to"]: b["template"]["components"][0]["parameters"] for b in graph.sends()}
    assert [p["text"] for p in bodies["905320000000"]] == ["Ayşe", "C0"]
    assert [p["text"] for p in bodies["905320000001"]] == ["there", "C1"]


def test_a_paused_broadcast_sends_nothing_until_resumed(app, graph):
    from saas.broadcasts.pacing import Pacing
    from saas.broadcasts.runner import Runner
    from saas.extensions import db
    from saas.messaging.outbound import send_service

    shop = Shop(app, graph)
    shop.template()
    shop.contacts(5)
    broadcast_id = shop.create()
    shop.call("start", broadcast_id)
    with app.app_context():
        Runner(db.session, send_service(app), batch=2, pacing=Pacing(enabled=False)).pass_once()
        db.session.remove()
    assert len(sends_to(graph)) == 2
    shop.call("pause", broadcast_id)
    run(app)
    with app.app_context():
        from saas.broadcasts.engine import send_batch

        # A worker that listed it running just before the pause: its claim finds it paused.
        assert send_batch(db.session, send_service(app), broadcast_id, 10) == 0
        db.session.remove()
    assert len(sends_to(graph)) == 2
    assert shop.get(broadcast_id)["counts"]["queued"] == 3
    shop.call("resume", broadcast_id)
    run(app)
    assert len(sends_to(graph)) == 5 and shop.get(broadcast_id)["status"] == "completed"
