"""Recovery never settles as failed a send WhatsApp took: its age covers the longest send, an accept
arriving after it settled the send is applied and billed once, and a send whose answer never came (the
worker died while WhatsApp took it) is found by the first status naming our message id.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from saas import create_app
from saas.billing import entitlements
from saas.config import ConfigError
from saas.extensions import db
from saas.messaging.outbound import send_service
from saas.messaging.outbound.accept_journal import KeptAccept
from saas.messaging.models import Message, WebhookDelivery
from saas.messaging.outbound.transports import SandboxTransport, Transports
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow
from tests import processes
from tests import whatsapp_payloads as wa
from tests.factories import sender, service_with, usage_values
from tests.messaging.live import BILLED_ONCE, CONTACT, OUR_MARK, inbound, live_number, text_payload
from tests.messaging.tenant_webhooks.test_forwarding import forwarding, receiver  # noqa: F401
from tests.metering.test_failures import Killed, assert_usage_equals_rows
from tests.webhooks.test_whatsapp_inbound import deliver

NOTHING = {"messages": 0, "conversations": 0, "conversations.service": 0}


def app_with(**settings):
    """An app built with these settings (never connected: only its settings are read)."""
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite:////nonexistent/never-opened.sqlite3",
                       "HOUSEKEEPING": False, **settings})


# -- the recovery age --------------------------------------------------------------------------------

def test_a_recovery_age_shorter_than_the_longest_send_is_refused():
    with pytest.raises(ConfigError, match="RECOVER_SENDS_AFTER_SECONDS=30 is shorter than the longest"):
        app_with(RECOVER_SENDS_AFTER_SECONDS=30.0)
    # Tries x timeouts (3 x 23.05 s) alone are past 60 s.
    with pytest.raises(ConfigError):
        app_with(RECOVER_SENDS_AFTER_SECONDS=60.0)


def test_the_recovery_age_is_derived_from_the_timeouts_tries_and_waits_when_unset():
    default = app_with().config["RECOVER_SENDS_AFTER_SECONDS"]
    # Every try at its full connect and read timeouts, the Retry-After waits between them, the accept's waits.
    assert default >= 3 * (3.05 + 20.0) + 2 * 2.0 + 5.0
    slower = app_with(WHATSAPP_TIMEOUT_SECONDS=60.0, WHATSAPP_SEND_RETRIES=4).config["RECOVER_SENDS_AFTER_SECONDS"]
    assert slower >= 5 * (3.05 + 60.0) + 4 * 2.0
    assert app_with(RECOVER_SENDS_AFTER_SECONDS=600.0).config["RECOVER_SENDS_AFTER_SECONDS"] == 600.0


# -- a send that outlived recovery ---------------------------------------------------------------------

def out_message(app, tenant_id) -> Message:
    with app.app_context():
        [message] = db.session.scalars(select(Message).where(Message.tenant_id == tenant_id,
                                                             Message.direction == "out"))
        db.session.expunge(message)
        db.session.remove()
    return message


def recover(app, older_than=None) -> int:
    with app.app_context():
        settled = send_service(app).recover_interrupted(older_than=older_than)
        db.session.remove()
    return settled


def test_recovery_at_its_age_leaves_a_send_waiting_on_whatsapp_alone(app, graph, acme, number):
    settled = []
    graph.while_sending(lambda body: settled.append(recover(app)))
    assert acme.send(number=number[0]).status_code == 200
    assert settled == [0]
    assert out_message(app, acme.tenant_id).status == "accepted"


def test_an_accept_for_a_send_recovery_settled_meanwhile_is_applied_and_billed_once(app, graph, acme, number):
    # Recovery settles the send while WhatsApp holds it (a process whose age was too short, or a clock ahead).
    settled = []
    graph.while_sending(lambda body: settled.append(recover(app, older_than=timedelta(0))))
    response = acme.send(number=number[0], idempotency_key="late-1")
    assert settled == [1]
    assert response.status_code == 200
    wamid = response.get_json()["messages"][0]["id"]
    message = out_message(app, acme.tenant_id)
    assert (message.status, message.wa_message_id, message.error_code) == ("accepted", wamid, None)
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert_usage_equals_rows(app)
    # The same accept again (a kept copy replayed) changes nothing, and the key replays the answer.
    with app.app_context():
        service = send_service(app)
        assert service.write_accept(KeptAccept(acme.tenant_id, message.id, wamid, None, None, utcnow())) is True
        db.session.remove()
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert acme.send(number=number[0], idempotency_key="late-1").get_json() == response.get_json()


# -- a send whose answer never came ----------------------------------------------------------------

def status_naming(number, wamid, name, callback_data, recipient=CONTACT):
    item = wa.status(wamid, name, recipient=recipient, category="service")
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    return wa.notification(number[2], ("messages", wa.messages_value(_Named(number), statuses=[item])))


class _Named:
    def __init__(self, number):
        self.phone_number_id, self.display_number = number[0], "+1 555-020-0000"


def forwarded_statuses(app, tenant_id) -> list[dict]:
    with app.app_context():
        payloads = db.session.scalars(select(WebhookDelivery.payload).where(WebhookDelivery.tenant_id == tenant_id)
                                      .order_by(WebhookDelivery.id)).all()
        db.session.remove()
    return [p["entry"][0]["changes"][0]["value"]["statuses"][0] for p in payloads
            if "statuses" in p["entry"][0]["changes"][0]["value"]]


@pytest.fixture
def with_endpoint(forwarding, acme, receiver):
    from saas.messaging.tenant_webhooks import endpoints
    from saas.tenants.models import Tenant

    with forwarding.app_context():
        endpoints.save_endpoint(db.session.get(Tenant, acme.tenant_id), receiver.url)
        db.session.remove()
    return forwarding


def test_a_send_whose_worker_was_killed_while_whatsapp_took_it_is_billed_at_its_first_status(
        with_endpoint, client, graph, acme, number):
    app = with_endpoint
    graph.delay("POST", "/messages", seconds=15)  # WhatsApp holds the call; the worker dies meanwhile
    with app.app_context():
        url = str(db.engine.url.render_as_string(hide_password=False))
        db.session.remove()
    child = multiprocessing.get_context("spawn").Process(target=processes.send_live, args=(
        url, graph.url, number[0], acme.key, {**text_payload(CONTACT), "biz_opaque_callback_data": "order-42"}))
    child.start()
    try:
        deadline = time.time() + 60
        while not graph.requests("POST", "/messages"):
            assert time.time() < deadline, "the child never sent"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    [sent] = graph.sends()
    callback_data = sent["biz_opaque_callback_data"]
    assert OUR_MARK.match(callback_data).group(2) == "order-42"
    assert out_message(app, acme.tenant_id).status == "pending"
    assert recover(app, older_than=timedelta(0)) == 1
    assert usage_values(app, acme.tenant_id) == NOTHING

    # WhatsApp did send it; its statuses name our message id.
    wamid = wa.wamid()
    deliver(app, client, status_naming(number, wamid, "sent", callback_data))
    message = out_message(app, acme.tenant_id)
    assert (message.status, message.wa_message_id, message.error_code) == ("sent", wamid, None)
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    deliver(app, client, status_naming(number, wamid, "delivered", callback_data))
    assert out_message(app, acme.tenant_id).status == "delivered"
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert_usage_equals_rows(app)
    # The tenant's webhook gets the statuses with its own value, exactly.
    assert [s.get("biz_opaque_callback_data") for s in forwarded_statuses(app, acme.tenant_id)] == ["order-42"] * 2


class DiesOnceWhatsAppTookIt:
    """The live transport, then the process dies before it reads WhatsApp's answer."""

    mode = "live"
    side_effect_free = False

    def __init__(self, live):
        self.live = live

    def send(self, number, payload):
        self.live.send(number, payload)
        raise Killed()


def send_and_die(app, acme, number, body):
    with app.app_context():
        live = send_service(app).transports.live
        service = service_with(SandboxTransport(), transports=Transports(SandboxTransport(),
                                                                         DiesOnceWhatsAppTookIt(live)))
        tenant = tenant_snapshot(acme.tenant_id)
        with pytest.raises(Killed):
            service.send(tenant, entitlements.for_tenant(tenant), number[0], {**text_payload(CONTACT)},
                         upstream=body)
        db.session.remove()


@pytest.mark.parametrize("tenant_value", [None, "order-42", "", "{\"ref\": \"é\"}" + "x" * 496],
                         ids=["none", "short", "empty", "longest"])
def test_a_status_finds_a_send_still_pending_and_the_tenant_sees_its_own_callback_data(
        with_endpoint, client, graph, acme, number, tenant_value):
    app = with_endpoint
    body = text_payload(CONTACT)
    if tenant_value is not None:
        body["biz_opaque_callback_data"] = tenant_value
    send_and_die(app, acme, number, body)
    [sent] = graph.sends()
    callback_data = sent["biz_opaque_callback_data"]
    assert len(callback_data) <= 512
    assert out_message(app, acme.tenant_id).status == "pending"

    wamid = wa.wamid()
    deliver(app, client, status_naming(number, wamid, "sent", callback_data))
    message = out_message(app, acme.tenant_id)
    assert (message.status, message.wa_message_id) == ("sent", wamid)
    assert recover(app, older_than=timedelta(0)) == 0
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    [forwarded] = forwarded_statuses(app, acme.tenant_id)
    if tenant_value is None:
        assert "biz_opaque_callback_data" not in forwarded
    else:
        assert forwarded["biz_opaque_callback_data"] == tenant_value


def test_a_failed_status_naming_a_send_still_pending_settles_it_unbilled_with_whatsapps_error(
        forwarding, client, graph, acme, number):
    send_and_die(forwarding, acme, number, text_payload(CONTACT))
    callback_data = graph.sends()[0]["biz_opaque_callback_data"]
    failed = wa.failed(wa.wamid(), code=131026, recipient=CONTACT)
    failed["biz_opaque_callback_data"] = callback_data
    deliver(forwarding, client, wa.notification(number[2], ("messages", wa.messages_value(
        _Named(number), statuses=[failed]))))
    message = out_message(forwarding, acme.tenant_id)
    assert (message.status, message.error_code) == ("failed", 131026)
    assert usage_values(forwarding, acme.tenant_id) == NOTHING
    assert_usage_equals_rows(forwarding, some_usage=False)


def test_a_status_naming_another_tenants_message_takes_nothing(forwarding, client, graph, acme, number):
    other = sender(client, "pro")
    theirs = live_number(forwarding, graph, other.tenant_id)
    inbound(forwarding, other.tenant_id, theirs[1], CONTACT)
    send_and_die(forwarding, other, theirs, text_payload(CONTACT))
    callback_data = graph.sends()[0]["biz_opaque_callback_data"]
    # Through acme's number: the message it names is not acme's.
    deliver(forwarding, client, status_naming(number, wa.wamid(), "sent", callback_data))
    assert out_message(forwarding, other.tenant_id).status == "pending"
