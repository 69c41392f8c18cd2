"""What WhatsApp says of a user's consent becomes theirs here, source whatsapp: Meta's user_preferences webhook
(stop, resume), error 131050 in a failed status, and 131050 as a send's own refusal (live, sandbox, batch)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from saas.contacts.consent.consumers import on_preferences
from saas.contacts.models import Contact
from saas import events
from saas.errors import UpstreamError
from saas.events import Event
from saas.extensions import db
from saas.messaging import domain_events as happened
from saas.messaging.outbound import send_service
from saas.tenants.services import tenant_snapshot
from tests import whatsapp_payloads as wa
from tests.contacts.consent.conftest import history, states, webhook_number
from tests.contacts.consent.factories import opt_in
from tests.factories import make_tenant, sender, usage_values
from tests.messaging.live import add_template, live_number_with, template_payload
from tests.webhooks.test_whatsapp_inbound import deliver, kept_items, stored

ADA, BEN = "16505551234", "16505559876"
STOP_DETAIL = "User requested to stop marketing messages"


@pytest.fixture
def acme(client):
    return sender(client, "pro")


@pytest.fixture
def live(app, graph, acme):
    """acme's live number (with a MARKETING template "promo"), as WhatsApp's notifications name it."""
    found = live_number_with(app, graph, acme.tenant_id, contacts=(ADA, BEN))
    graph.add_template(found[2], "promo", category="MARKETING")
    add_template(app, acme.tenant_id, found[2], "promo", category="MARKETING")
    return webhook_number(app, found[1])


def sent_to(app, number, to: str) -> str:
    """A message of the number's that WhatsApp accepted for ``to``; its wamid."""
    with app.app_context():
        wamid = wa.add_sent_message(number, to=to)
        db.session.remove()
    return wamid


def preferences(number, *entries):
    return wa.notification(number.waba_id, wa.user_preferences(number, *entries))


def test_user_preferences_stop_and_resume_opt_the_user_out_and_back_in(app, client, whatsapp, acme, live):
    now = int(time.time())
    deliver(app, client, preferences(live, wa.preference(ADA, "stop", timestamp=now - 60)))
    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_out", "whatsapp")}

    deliver(app, client, preferences(live, wa.preference(ADA, "resume", timestamp=now)))

    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_in", "whatsapp")}
    assert history(app, acme.tenant_id) == [
        (ADA, "opted_out", "whatsapp", None, STOP_DETAIL),
        (ADA, "opted_in", "whatsapp", "opted_out", "User requested to resume marketing messages")]
    assert stored(app)[-1].outcome == "user preferences 1"
    with app.app_context():
        contact = db.session.scalar(select(Contact).where(Contact.tenant_id == acme.tenant_id))
        assert (contact.wa_id, contact.source) == (ADA, "inbound")
        db.session.remove()


def test_a_repeated_or_late_notification_changes_nothing(app, client, whatsapp, acme, live):
    now = int(time.time())
    stop = preferences(live, wa.preference(ADA, "stop", timestamp=now - 60))
    deliver(app, client, stop)
    deliver(app, client, stop)  # WhatsApp repeats itself: nothing new
    deliver(app, client, preferences(live, wa.preference(ADA, "resume", timestamp=now)))
    deliver(app, client, stop)  # older news than the resume: not applied
    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_in", "whatsapp")}
    assert [kind for _, kind, *_ in history(app, acme.tenant_id)] == ["opted_out", "opted_in"]


def test_an_event_delivered_again_records_nothing_new(app, acme, live):
    event = Event(happened.PREFERENCES_CHANGED, acme.tenant_id, f"{acme.tenant_id}:contact:{ADA}", {
        "number": {"id": live.id, "tenant_id": acme.tenant_id}, "wa_id": ADA, "category": "marketing_messages",
        "value": "stop", "source": "user_preferences", "detail": STOP_DETAIL, "timestamp": None}, id=7)
    with app.app_context():
        for _ in range(2):
            on_preferences(db.session.connection(), [event])
            db.session.commit()
        db.session.remove()
    assert history(app, acme.tenant_id) == [(ADA, "opted_out", "whatsapp", None, STOP_DETAIL)]


def test_items_consent_cannot_use_are_kept_unapplied_and_the_rest_applied(app, client, whatsapp, acme, live):
    deliver(app, client, preferences(
        live, wa.preference(ADA, "stop"), wa.preference(BEN, "stop", category="utility_messages"),
        wa.preference(BEN, "pause"), {"detail": "no user", "category": "marketing_messages", "value": "stop"}))
    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_out", "whatsapp")}
    assert [item.error for item in kept_items(app)] == [
        "category 'utility_messages' is not one consent follows (kept, not applied)",
        "value 'pause' is neither stop nor resume", "no usable wa_id (a string of at most 64 characters)"]


def test_another_accounts_number_opts_out_nobody_here(app, client, whatsapp, acme, live):
    with app.app_context():
        stranger = wa.add_live_number(make_tenant("pro").id)
        db.session.remove()
    deliver(app, client, preferences(stranger, wa.preference(ADA, "stop")))
    assert states(app, acme.tenant_id) == {}
    assert states(app, stranger.tenant_id) == {(ADA, stranger.id): ("opted_out", "whatsapp")}


def test_a_failed_status_with_131050_opts_the_recipient_out(app, client, whatsapp, acme, live):
    opt_in(app, acme.tenant_id, live.id, ADA)
    sent = sent_to(app, live, ADA)
    deliver(app, client, wa.notification(live.waba_id, ("messages", wa.messages_value(live, statuses=[
        wa.failed(sent, code=131050, title="User's marketing preference", recipient=ADA)]))))
    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_out", "whatsapp")}
    assert history(app, acme.tenant_id)[-1] == (ADA, "opted_out", "whatsapp", "opted_in",
                                                "User's marketing preference")


def test_another_failure_opts_nobody_out(app, client, whatsapp, acme, live):
    sent = sent_to(app, live, ADA)
    deliver(app, client, wa.notification(live.waba_id, ("messages", wa.messages_value(live, statuses=[
        wa.failed(sent, code=131026, recipient=ADA)]))))
    assert states(app, acme.tenant_id) == {}


def test_a_send_refused_with_131050_opts_the_recipient_out_and_the_next_is_not_sent(app, graph, acme, live):
    opt_in(app, acme.tenant_id, live.id, ADA)
    graph.fail("POST", "/messages", code=131050)
    refused = acme.send(number=live.phone_number_id, payload=template_payload(ADA, "promo"))
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == 131050

    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_out", "whatsapp")}
    again = acme.send(number=live.phone_number_id, payload=template_payload(ADA, "promo"))
    assert again.get_json()["error"]["reason"] == "opted_out"
    assert len(graph.requests("POST", "/messages")) == 1
    assert usage_values(app, acme.tenant_id).get("messages", 0) == 0


def test_a_batch_send_refused_with_131050_opts_that_recipient_out(app, graph, acme, live):
    opt_in(app, acme.tenant_id, live.id, ADA, BEN)
    graph.fail("POST", "/messages", code=131050, after=1)
    with app.app_context():
        tenant = tenant_snapshot(acme.tenant_id)
        db.session.remove()
    service = send_service(app)
    saved, service.concurrency = service.concurrency, 1  # one call at a time: the second is the one refused
    try:
        results = service.send_many(tenant, live.phone_number_id, [template_payload(ADA, "promo"),
                                                                     template_payload(BEN, "promo")])
    finally:
        service.concurrency = saved
    assert [r.accepted for r in results] == [True, False]
    assert isinstance(results[1].error, UpstreamError)
    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_in", "api"),
                                           (BEN, live.id): ("opted_out", "whatsapp")}


def test_the_sandbox_rehearses_131050_and_its_opt_out(app, acme):
    stopped = "15550131050"
    opt_in(app, acme.tenant_id, acme.number, stopped)
    refused = acme.send(payload=template_payload(stopped, "seasonal_promotion"))
    assert refused.get_json()["error"]["code"] == 131050
    assert [(state, source) for state, source in states(app, acme.tenant_id).values()] == [("opted_out", "whatsapp")]
    results = send_service(app).send_many(_tenant(app, acme.tenant_id), acme.number,
                                          [template_payload(stopped, "order_update")])
    assert results[0].error.graph_code == 131050  # a utility template is not held back: WhatsApp refuses it


def _tenant(app, tenant_id):
    with app.app_context():
        tenant = tenant_snapshot(tenant_id)
        db.session.remove()
    return tenant


def test_an_opt_out_delivered_alone_after_another_consumer_failed_is_kept(app, client, whatsapp, acme, live):
    """When a consumer fails, the outbox delivers each event to each consumer alone in a savepoint: consent's
    writes there are kept, not rolled back with its session."""
    calls = []

    def flaky(conn, delivered):
        calls.append(len(delivered))
        if len(calls) == 1:
            raise RuntimeError("a consumer that fails once")

    events.subscribe(happened.PREFERENCES_CHANGED, flaky, name="tests.flaky")
    try:
        deliver(app, client, preferences(live, wa.preference(ADA, "stop")))
    finally:
        events.unsubscribe("tests.flaky")
    assert calls == [1, 1]  # together, then alone
    assert states(app, acme.tenant_id) == {(ADA, live.id): ("opted_out", "whatsapp")}
    assert history(app, acme.tenant_id) == [(ADA, "opted_out", "whatsapp", None, STOP_DETAIL)]
