"""Messaging's domain events (saas.messaging.domain_events), each raised by its real change, in its
transaction, and given after commit to a consumer the tests subscribe (nothing in saas/ knows it).

The crash here is a process killed right after its commit (tests/test_events.py has the rest of the
delivery rules).
"""
from __future__ import annotations

import json
import multiprocessing
import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from saas import events
from saas.extensions import db
from saas.messaging.domain_events import (
    MESSAGE_RECEIVED, NUMBER_QUALITY_CHANGED, SEND_SETTLED, STATUS_CHANGED, TEMPLATE_CHANGED, conversation,
)
from saas.messaging.models import Message, WebhookDelivery, WhatsAppNotification
from saas.messaging.outbound import send_service
from saas.messaging.templates.updates import apply_template_change, apply_template_webhook
from saas.outbox import OutboxEvent
from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.factories import make_tenant, sender, settle
from tests.messaging.live import CONTACT, add_template
from tests.messaging.tenant_webhooks.test_forwarding import forwarding, receiver  # noqa: F401  (fixtures)
from tests.webhooks.test_whatsapp_inbound import SECRET, deliver, whatsapp  # noqa: F401  (fixture)

TYPES = (MESSAGE_RECEIVED, STATUS_CHANGED, TEMPLATE_CHANGED, NUMBER_QUALITY_CHANGED, SEND_SETTLED)


class Recorder:
    def __init__(self):
        self.got = []

    def __call__(self, conn, given):
        self.got.extend(given)

    def of(self, event_type) -> list:
        return [event for event in self.got if event.type == event_type]


@pytest.fixture
def recorder():
    """A consumer of every messaging event, subscribed for this test only."""
    consumer = Recorder()
    events.subscribe(TYPES, consumer, name="tests.messaging.recorder")
    yield consumer
    events.unsubscribe("tests.messaging.recorder")


@pytest.fixture
def inbox(app):
    """A Starter tenant's live number (tests.whatsapp_payloads.Number)."""
    with app.app_context():
        number = wa.add_live_number(make_tenant("starter").id)
        db.session.remove()
    return number


def in_outbox(app) -> list[OutboxEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def test_inbound_messages_and_statuses_are_published_per_conversation_as_whatsapp_sent_them(
        whatsapp, client, inbox, recorder):
    with whatsapp.app_context():
        wamid = wa.add_sent_message(inbox)
        db.session.remove()
    item, status, contact = wa.inbound("text", {"body": "hi"}), wa.status(wamid, "delivered"), wa.contact()
    value = wa.messages_value(inbox, contacts=[contact], messages=[item], statuses=[status])
    deliver(whatsapp, client, wa.notification(inbox.waba_id, ("messages", value)))
    assert [(event.type, event.payload["wa_message_id"]) for event in recorder.got] == [
        (STATUS_CHANGED, wamid), (MESSAGE_RECEIVED, item["id"])]
    changed, received = recorder.got
    assert (changed.payload["object"], changed.payload["status"]) == (status, "delivered")
    assert (received.payload["object"], received.payload["contact"], received.payload["from"]) == (
        item, contact, "16505551234")
    number = {"id": inbox.id, "tenant_id": inbox.tenant_id, "phone_number_id": inbox.phone_number_id,
              "display_number": inbox.display_number, "waba_id": inbox.waba_id}
    for event in (changed, received):
        assert event.tenant_id == inbox.tenant_id
        assert event.stream == conversation(inbox.tenant_id, "16505551234")
        assert (event.payload["number"], event.payload["metadata"], event.payload["waba_id"]) == (
            number, value["metadata"], inbox.waba_id)
    assert in_outbox(whatsapp) == []


def test_a_sandbox_send_is_settled_and_its_receipts_are_published_as_whatsapp_would_write_them(
        app, client, recorder):
    acme = sender(client, "free")
    answer = acme.send(to=CONTACT)
    assert answer.status_code == 200
    wamid = answer.get_json()["messages"][0]["id"]
    (settled,) = recorder.got  # the send's own transaction, delivered before the answer
    assert settled.payload | {"message_id": None} == {
        "message_id": None, "wa_id": CONTACT, "outcome": "accepted", "wa_message_id": wamid, "error_code": None,
        "error_title": None, "category": "service"}
    settle(app)
    receipts = recorder.of(STATUS_CHANGED)
    assert [event.payload["status"] for event in receipts] == ["sent", "delivered", "read"]
    assert {event.stream for event in recorder.got} == {conversation(acme.tenant_id, CONTACT)}
    sent = receipts[0].payload["object"]
    assert (sent["id"], sent["recipient_id"], sent["pricing"]["billable"]) == (wamid, CONTACT, False)
    assert receipts[0].payload["waba_id"] is None and receipts[0].payload["metadata"] is None

    refused = acme.send(to="15550000500")  # the sandbox's recipient that always fails
    assert refused.status_code >= 400
    last = recorder.got[-1]
    assert (last.type, last.payload["outcome"], last.payload["error_code"], last.payload["wa_message_id"]) == (
        SEND_SETTLED, "failed", 131000, None)


def test_a_live_send_is_settled_when_whatsapp_accepts_or_refuses_it(app, graph, acme, number, recorder):
    accepted = acme.send(number=number[0])
    assert accepted.status_code == 200
    graph.fail("POST", "/messages", code=131026)
    assert acme.send(number=number[0]).status_code == 400
    with app.app_context():
        ids = list(db.session.scalars(select(Message.id).where(Message.tenant_id == acme.tenant_id,
                                                               Message.direction == "out").order_by(Message.id)))
        db.session.remove()
    assert [(event.payload["message_id"], event.payload["outcome"], event.payload["wa_message_id"],
             event.payload["error_code"]) for event in recorder.of(SEND_SETTLED)] == [
        (ids[0], "accepted", accepted.get_json()["messages"][0]["id"], None), (ids[1], "failed", None, 131026)]


def test_a_send_recovery_settled_while_whatsapp_held_it_is_settled_again_accepted_once(
        app, graph, acme, number, recorder):
    def recover(body):
        with app.app_context():
            send_service(app).recover_interrupted(older_than=timedelta(0))
            db.session.remove()

    graph.while_sending(recover)
    response = acme.send(number=number[0])
    assert response.status_code == 200
    assert [(event.payload["outcome"], event.payload["wa_message_id"], event.payload["error_code"])
            for event in recorder.of(SEND_SETTLED)] == [
        ("failed", None, 131000), ("accepted", response.get_json()["messages"][0]["id"], None)]


def test_a_template_change_from_meta_is_published_once_and_never_when_rolled_back(app, recorder):
    with app.app_context():
        tenant_id = make_tenant("pro").id
        db.session.remove()
    template_id = add_template(app, tenant_id, "102290129340398", "order_confirmation", status="PENDING",
                               meta_id="1689556908129832")
    field, value = wa.template_status_update("APPROVED")
    with app.app_context():
        apply_template_change("102290129340398", field, value)
        db.session.rollback()
        assert events.commit(db.session) == 0
        apply_template_webhook("102290129340398", field, value)
        apply_template_webhook("102290129340398", field, value)  # nothing changes the second time
        db.session.remove()
    (changed,) = recorder.got
    assert changed.type == TEMPLATE_CHANGED and changed.stream == f"{tenant_id}:template:{template_id}"
    assert {key: changed.payload[key] for key in ("template_id", "status", "name", "field", "deleted")} == {
        "template_id": template_id, "status": "APPROVED", "name": "order_confirmation", "field": field,
        "deleted": False}


def test_a_numbers_quality_change_is_published_with_what_it_was(whatsapp, client, inbox, recorder):
    update = wa.quality_update(inbox.display_number, event="FLAGGED", limit="TIER_2K")
    deliver(whatsapp, client, wa.notification(inbox.waba_id, update))
    deliver(whatsapp, client, wa.notification(inbox.waba_id, update))  # the same again: no change
    (changed,) = recorder.got
    assert changed.type == NUMBER_QUALITY_CHANGED
    assert {key: changed.payload[key] for key in (
        "number_id", "quality_rating", "messaging_limit_tier", "previous_quality_rating",
        "previous_messaging_limit_tier", "source")} == {
        "number_id": inbox.id, "quality_rating": "RED", "messaging_limit_tier": "TIER_2K",
        "previous_quality_rating": None, "previous_messaging_limit_tier": None, "source": "webhook"}


# -- a process killed between its commit and the delivery ----------------------------------------

def _apply_and_die_at_commit(url: str) -> None:
    """A worker that applies the stored notifications and is killed the moment its transaction commits."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from saas.messaging.inbound import notifications
    from tests.processes import build_app

    app = build_app(url, WHATSAPP_APP_SECRET=SECRET)
    event.listen(Session, "after_commit", lambda session: os._exit(0))  # no clean-up: as if killed there
    with app.app_context():
        notifications.apply_pending(older_than=timedelta(0))
    os._exit(3)  # never reached: nothing was committed


def test_events_of_a_worker_killed_right_after_its_commit_are_delivered_once_by_the_sweep(
        forwarding, receiver, inbox, recorder):  # noqa: F811
    from saas.messaging.tenant_webhooks import endpoints
    from saas.tenants.models import Tenant

    item = wa.inbound("text", {"body": "survives the crash"})
    stored = wa.notification(inbox.waba_id, ("messages", wa.messages_value(inbox, contacts=[wa.contact()],
                                                                           messages=[item])))
    with forwarding.app_context():
        endpoints.save_endpoint(db.session.get(Tenant, inbox.tenant_id), receiver.url)
        db.session.add(WhatsAppNotification(body=json.dumps(stored), received_at=utcnow()))
        db.session.commit()
        url = db.engine.url.render_as_string(hide_password=False)
        db.session.remove()
    child = multiprocessing.get_context("spawn").Process(target=_apply_and_die_at_commit, args=(url,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    (left,) = in_outbox(forwarding)  # committed with the message, never delivered
    assert (left.type, left.payload["wa_message_id"]) == (MESSAGE_RECEIVED, item["id"])
    with forwarding.app_context():
        assert db.session.scalar(select(Message.body_summary).where(Message.wa_message_id == item["id"])) == (
            "survives the crash")
        assert db.session.scalars(select(WebhookDelivery)).all() == []
        assert events.sweep() == 0  # too fresh: its own process might still deliver it
        assert events.sweep(now=utcnow() + events.SWEEP_AFTER + timedelta(seconds=1)) == 1
        assert events.sweep(now=utcnow() + timedelta(minutes=5)) == 0
        deliveries = db.session.scalars(select(WebhookDelivery)).all()
        assert [d.payload["entry"][0]["changes"][0]["value"]["messages"] for d in deliveries] == [[item]]
        db.session.remove()
    assert [(event.id, event.payload["object"]) for event in recorder.got] == [(left.id, item)]
    assert in_outbox(forwarding) == []
