"""Outcomes: WhatsApp's codes decide retries, statuses settle recipients and never move them back, an
opt-out mid-broadcast stops sends to that contact."""
from __future__ import annotations

from datetime import timedelta

import pytest

from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.broadcasts.helpers import Shop, run, sends_to
from tests.webhooks.test_whatsapp_inbound import deliver, whatsapp  # noqa: F401


@pytest.fixture
def no_transport_retries(app):
    """The Cloud API transport answers WhatsApp's refusal at once (it would otherwise wait and try again)."""
    saved = app.config["WHATSAPP_SEND_RETRIES"]
    app.config["WHATSAPP_SEND_RETRIES"] = 0
    yield
    app.config["WHATSAPP_SEND_RETRIES"] = saved


def later(delta):
    return lambda: utcnow() + delta


def one_recipient(app, graph, **create):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(1)
    broadcast_id = shop.create(**create)
    shop.call("start", broadcast_id)
    return shop, broadcast_id


@pytest.mark.parametrize("code", [130429, 131056])
def test_throughput_and_pair_rate_back_off_then_send(app, graph, no_transport_retries, code):
    shop, broadcast_id = one_recipient(app, graph)
    graph.fail("POST", "/messages", code=code)
    run(app)
    [recipient] = shop.recipients(broadcast_id)
    assert (recipient.status, recipient.error_code) == ("queued", str(code))
    assert recipient.next_attempt_at > utcnow()
    assert shop.get(broadcast_id)["status"] == "running"
    run(app, clock=later(timedelta(minutes=1)))
    [recipient] = shop.recipients(broadcast_id)
    assert recipient.status == "sent" and recipient.attempts == 2
    assert len(sends_to(graph)) == 2


@pytest.mark.parametrize("code", [131026, 131047])
def test_undeliverable_and_outside_the_window_are_never_retried(app, graph, no_transport_retries, code):
    shop, broadcast_id = one_recipient(app, graph)
    graph.fail("POST", "/messages", code=code)
    run(app)
    run(app, clock=later(timedelta(days=2)))
    [recipient] = shop.recipients(broadcast_id)
    assert (recipient.status, recipient.error_code) == ("failed", str(code))
    assert len(sends_to(graph)) == 1
    assert shop.get(broadcast_id)["status"] == "completed"


def test_the_per_user_marketing_limit_is_retried_a_day_later_only_when_chosen(app, graph, no_transport_retries):
    shop, chosen = one_recipient(app, graph, retry_per_user_limit=True)
    graph.fail("POST", "/messages", code=131049)
    run(app)
    run(app, clock=later(timedelta(hours=23)))
    assert shop.recipients(chosen)[0].status == "queued"
    assert len(sends_to(graph)) == 1
    run(app, clock=later(timedelta(hours=24, minutes=1)))
    assert shop.recipients(chosen)[0].status == "sent"

    other, not_chosen = one_recipient(app, graph)
    graph.fail("POST", "/messages", code=131049)
    run(app)
    [recipient] = other.recipients(not_chosen)
    assert (recipient.status, recipient.error_code) == ("failed", "131049")


def test_a_user_who_stopped_marketing_is_skipped(app, graph, no_transport_retries):
    shop, broadcast_id = one_recipient(app, graph)
    graph.fail("POST", "/messages", code=131050)
    run(app)
    [recipient] = shop.recipients(broadcast_id)
    assert (recipient.status, recipient.skip_reason) == ("skipped", "opted_out")


def test_an_opt_out_mid_broadcast_stops_sends_to_that_contact(app, graph):
    shop = Shop(app, graph)
    shop.template()
    ids = shop.contacts(6)
    broadcast_id = shop.create()
    shop.call("start", broadcast_id)
    graph.while_sending(lambda body: shop.opt_out(ids[-1]) if body["to"] == "905320000000" else None)
    run(app, batch=2)
    assert "905320000005" not in sends_to(graph)
    skipped = [r for r in shop.recipients(broadcast_id) if r.status == "skipped"]
    assert [(r.contact_id, r.skip_reason) for r in skipped] == [(ids[-1], "opted_out")]


def status_for(shop, body, name, **extra):
    item = wa.status(body.get("wamid", "wamid.x"), name, recipient=body["to"], **extra)
    item["biz_opaque_callback_data"] = body["biz_opaque_callback_data"]
    return wa.notification(shop.waba_id, ("messages", wa.messages_value(_Named(shop), statuses=[item])))


class _Named:
    def __init__(self, shop):
        self.phone_number_id, self.display_number = shop.phone_number_id, "+1 555-020-0000"


def test_statuses_move_a_recipient_forward_and_never_back(app, client, graph, whatsapp):  # noqa: F811
    shop, broadcast_id = one_recipient(app, graph)
    run(app)
    [body] = graph.sends()
    body = {**body, "wamid": graph.answers[-1]["messages"][0]["id"]}
    deliver(app, client, status_for(shop, body, "delivered"))
    assert shop.recipients(broadcast_id)[0].status == "delivered"
    deliver(app, client, status_for(shop, body, "read"))
    deliver(app, client, status_for(shop, body, "sent"))
    [recipient] = shop.recipients(broadcast_id)
    assert recipient.status == "read" and recipient.read_at is not None


def test_a_send_whose_answer_was_lost_is_unknown_until_its_status_settles_it(app, client, graph, whatsapp,  # noqa: F811
                                                                            no_transport_retries):
    app.config["WHATSAPP_TIMEOUT_SECONDS"], saved = 0.2, app.config["WHATSAPP_TIMEOUT_SECONDS"]
    try:
        shop, broadcast_id = one_recipient(app, graph)
        graph.delay("POST", "/messages", seconds=0.5)
        run(app)
    finally:
        app.config["WHATSAPP_TIMEOUT_SECONDS"] = saved
    [recipient] = shop.recipients(broadcast_id)
    assert recipient.status == "unknown" and recipient.message_id is not None
    run(app, clock=later(timedelta(days=2)))
    assert len(sends_to(graph)) == 1  # never sent again by itself
    [body] = graph.sends()
    deliver(app, client, status_for(shop, {**body, "wamid": "wamid.late"}, "delivered"))
    assert shop.recipients(broadcast_id)[0].status == "delivered"
