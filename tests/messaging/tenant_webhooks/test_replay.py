"""Replaying a delivery sends exactly one copy, now, to the endpoint's current URL.

A delivery still waiting for its next try is not copied: its retry goes at once. One a worker is
posting is left to that try; one delivered while the tenant looked at it pending is not sent again.
On PostgreSQL, replays race the delivery worker over real parallel connections.
"""
from __future__ import annotations

import html
import threading
import time
from datetime import timedelta

import pytest

from saas.extensions import db
from saas.messaging.tenant_webhooks import delivery, endpoints
from saas.messaging.tenant_webhooks.forwarding import replay as replay_delivery
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.conftest import csrf_token
from tests.messaging.tenant_webhooks.test_forwarding import (
    deliveries,
    forwarding,
    login_as,
    receiver,
    run_deliveries,
    statuses_of,
    tenant_with_endpoint,
)
from tests.webhook_receiver import Receiver
from tests.webhooks.test_whatsapp_inbound import deliver


def status_ids(received) -> list[str]:
    return [r.json["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] for r in received]


def replay(app, tenant_id, delivery_id, **kwargs) -> tuple[str, int]:
    """(what the replay did, the delivery that goes or went)."""
    with app.app_context():
        done = replay_delivery(db.session.get(Tenant, tenant_id), delivery_id, **kwargs)
        result = done.outcome, done.delivery.id
        db.session.remove()
    return result


def test_a_replay_after_fixing_the_url_goes_now_to_the_new_url_and_the_waiting_retry_adds_no_copy(
        forwarding, client, auth, receiver):
    fixed = Receiver().start()
    try:
        tenant_id = login_as(forwarding, auth)
        with forwarding.app_context():
            endpoints.save_endpoint(db.session.get(Tenant, tenant_id), receiver.url)
            number = wa.add_live_number(tenant_id)
            wamid = wa.add_sent_message(number)
            db.session.remove()
        receiver.default = 500  # the old URL is broken
        deliver(forwarding, client, wa.notification(number.waba_id, ("messages", wa.messages_value(
            number, statuses=[wa.status(wamid, "sent")]))))
        t0 = utcnow()
        run_deliveries(forwarding, t0)
        (waiting,) = deliveries(forwarding)
        assert (waiting.state, waiting.next_attempt_at) == ("pending", t0 + timedelta(seconds=60))

        token = csrf_token(client, "/webhooks")
        assert client.post("/webhooks", data={"csrf_token": token, "url": fixed.url}).status_code == 302
        page = client.get("/webhooks").get_data(as_text=True)
        assert 'name="seen_state" value="pending"' in page
        response = client.post(f"/webhook-deliveries/{waiting.id}/replay",
                               data={"csrf_token": csrf_token(client, "/webhooks"), "seen_state": "pending"},
                               follow_redirects=True)
        assert f"Delivery {waiting.id} is sent now, to your current URL" in html.unescape(
            response.get_data(as_text=True))
        assert run_deliveries(forwarding, utcnow()) == 1  # now, not after the old retry's wait
        assert status_ids(fixed.received) == [wamid]
        assert run_deliveries(forwarding, utcnow() + timedelta(hours=2)) == 0  # the retry was the replay
        assert status_ids(fixed.received) == [wamid] and len(receiver.received) == 1
        assert [(d.id, d.state, d.replay_of) for d in deliveries(forwarding)] == [(waiting.id, "delivered", None)]
    finally:
        fixed.stop()


def test_a_delivery_being_posted_is_left_to_that_try_and_not_sent_twice(forwarding, client, receiver):
    forwarding.config["WEBHOOK_READ_TIMEOUT"] = 10.0
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        wamid = wa.add_sent_message(acme.number)
        db.session.remove()
    deliver(forwarding, client, statuses_of(acme, wamid, "sent"))
    (pending,) = deliveries(forwarding)
    release = threading.Event()
    receiver.answers = [("hold", release, 200)]  # the endpoint answers once the replay has been asked
    with forwarding.app_context():
        assert delivery.deliver_due(now=utcnow()) == 1  # claimed; the post is under way in the background
        db.session.remove()
    try:
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.received  # the post has reached the endpoint, which has not answered yet
        assert replay(forwarding, acme.id, pending.id, seen_state="pending") == ("in flight", pending.id)
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while deliveries(forwarding)[0].state == "pending" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert deliveries(forwarding)[0].state == "delivered"
    # Asked again from the page that still shows it pending: delivered meanwhile, so nothing more goes.
    assert replay(forwarding, acme.id, pending.id, seen_state="pending") == ("delivered meanwhile", pending.id)
    assert run_deliveries(forwarding, utcnow() + timedelta(days=1)) == 0
    assert status_ids(receiver.received) == [wamid] and len(deliveries(forwarding)) == 1
    # Asked of a delivery the tenant saw delivered: a new copy, as asked.
    outcome, copy_id = replay(forwarding, acme.id, pending.id, seen_state="delivered")
    assert outcome == "copied" and copy_id != pending.id


def test_replaying_a_dead_delivery_twice_sends_one_copy(forwarding, client, receiver):
    forwarding.config["WEBHOOK_RETRY_SCHEDULE"] = ()
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        wamid = wa.add_sent_message(acme.number)
        db.session.remove()
    receiver.answers = [500]
    deliver(forwarding, client, statuses_of(acme, wamid, "read"))
    run_deliveries(forwarding)
    (dead,) = deliveries(forwarding)
    assert dead.state == "dead"
    first = replay(forwarding, acme.id, dead.id, seen_state="dead")
    second = replay(forwarding, acme.id, dead.id, seen_state="dead")  # a second click before it went
    assert (first[0], second) == ("copied", ("due now", first[1]))
    assert run_deliveries(forwarding, utcnow() + timedelta(seconds=1)) == 1
    assert run_deliveries(forwarding, utcnow() + timedelta(days=1)) == 0
    assert status_ids(receiver.received) == [wamid, wamid]  # the dead try, then one copy
    assert [(d.state, d.replay_of) for d in deliveries(forwarding)] == [("dead", None), ("delivered", dead.id)]


@pytest.mark.postgres_only
def test_replays_racing_the_retry_workers_send_exactly_one_copy_each(backend, forwarding, client, receiver):
    if backend != "postgresql":
        pytest.skip("real parallel connections: PostgreSQL only")
    acme = tenant_with_endpoint(forwarding, receiver)
    rounds, per_round = 5, 8
    for round_ in range(rounds):
        with forwarding.app_context():
            wamids = [wa.add_sent_message(acme.number) for _ in range(per_round)]
            db.session.remove()
        receiver.answers, receiver.default = [], 500
        deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
            acme.number, statuses=[wa.status(w, "sent") for w in wamids]))))
        t0 = utcnow()
        assert run_deliveries(forwarding, t0) == per_round
        waiting = [d.id for d in deliveries(forwarding) if d.state == "pending"]
        assert len(waiting) == per_round
        # The URL is fixed and the retries fall due at t0 + 60 s; each post takes a moment, so replays
        # meet deliveries before, during and after their post.
        receiver.default = 200
        receiver.answers = [("slow", 0.02, 200)] * (3 * per_round)
        receiver.received.clear()
        due = t0 + timedelta(seconds=60)
        start, replayed, errors = threading.Barrier(3), threading.Event(), []

        def worker():
            try:
                with forwarding.app_context():
                    start.wait(10)
                    for _ in range(100):  # two of these claim at once, as two processes would
                        if delivery.deliver_due(now=due, wait_for_answers=True, limit=2) == 0 and replayed.is_set():
                            break
                        db.session.remove()
                    db.session.remove()
            except Exception as exc:  # reported below, in the test's thread
                errors.append(exc)

        def replays():
            try:
                with forwarding.app_context():
                    tenant = db.session.get(Tenant, acme.id)
                    db.session.rollback()
                    start.wait(10)
                    # In the order the workers claim, or against it: the race meets both ways.
                    for delivery_id in (waiting if round_ % 2 else list(reversed(waiting))):
                        replay_delivery(tenant, delivery_id, seen_state="pending", now=due)
                    db.session.remove()
            except Exception as exc:
                errors.append(exc)
            finally:
                replayed.set()

        threads = [threading.Thread(target=worker), threading.Thread(target=worker), threading.Thread(target=replays)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        while run_deliveries(forwarding, due + timedelta(days=1)):
            pass  # whatever is left goes; nothing may go twice
        assert sorted(status_ids(receiver.received)) == sorted(wamids), round_
        assert {d.state for d in deliveries(forwarding)} == {"delivered"}
