"""WhatsApp's webhooks in: the handshake, signatures, storing before answering, and applying every field."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.messaging.inbound import notifications
from saas.messaging.models import Message, PhoneNumber, ServiceWindow, UnappliedItem, WhatsAppNotification
from saas.messaging.outbound.windows import customer_service_window_open
from saas.timeutil import from_timestamp, utcnow
from tests import whatsapp_payloads as wa
from tests.factories import make_tenant, settle

SECRET = "test-app-secret"
VERIFY = "test-verify-token"


@pytest.fixture
def whatsapp(app):
    """The app with WhatsApp's app secret and verify token set; put back after."""
    saved = {name: app.config.get(name) for name in ("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN")}
    app.config.update(WHATSAPP_APP_SECRET=SECRET, WHATSAPP_VERIFY_TOKEN=VERIFY)
    yield app
    app.config.update(saved)


@pytest.fixture
def acme(app):
    """A tenant on Starter with one live number; yields the number."""
    with app.app_context():
        tenant = make_tenant("starter")
        number = wa.add_live_number(tenant.id)
        db.session.remove()
    return number


def post(client, payload, secret=SECRET, headers=None):
    body, signed_headers = wa.signed(payload, secret)
    return client.post("/webhooks/whatsapp", data=body, headers=headers if headers is not None else signed_headers)


def deliver(app, client, payload):
    """POST a signed notification and wait until its background job has applied it."""
    response = post(client, payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    settle(app)
    return response


def stored(app) -> list[WhatsAppNotification]:
    with app.app_context():
        rows = list(db.session.scalars(select(WhatsAppNotification).order_by(WhatsAppNotification.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def kept_items(app) -> list[UnappliedItem]:
    """The items kept unapplied, in the order they were kept."""
    with app.app_context():
        rows = list(db.session.scalars(select(UnappliedItem).order_by(UnappliedItem.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def message(app, wamid) -> Message:
    with app.app_context():
        row = db.session.scalar(select(Message).where(Message.wa_message_id == wamid))
        db.session.expunge_all()
        db.session.remove()
    return row


# -- the handshake -------------------------------------------------------------------------

def test_handshake_echoes_the_challenge_for_the_right_token(whatsapp, client):
    response = client.get("/webhooks/whatsapp", query_string={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "1158201444"


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158201444"},
    {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
])
def test_handshake_refuses_a_wrong_token_or_mode(whatsapp, client, query):
    response = client.get("/webhooks/whatsapp", query_string=query)
    assert response.status_code == 403
    assert "1158201444" not in response.get_data(as_text=True)


def test_handshake_without_a_configured_token_is_unavailable(app, client):
    response = client.get("/webhooks/whatsapp", query_string={
        "hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})
    assert response.status_code == 503


# -- signatures ----------------------------------------------------------------------------

def test_a_signed_notification_is_stored_and_answered_at_once(whatsapp, client, acme):
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "hi"})])))
    response = post(client, payload)
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    rows = stored(whatsapp)
    assert len(rows) == 1
    assert json.loads(rows[0].body) == payload


@pytest.mark.parametrize("headers", [
    {"X-Hub-Signature-256": "sha256=" + "0" * 64},                      # wrong
    {"X-Hub-Signature-256": "sha1=" + "0" * 40},                        # another scheme
    {"X-Hub-Signature-256": "0" * 64},                                  # no scheme
    {},                                                                 # missing
])
def test_a_bad_or_missing_signature_writes_nothing(whatsapp, client, acme, headers):
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "hi"})])))
    response = post(client, payload, headers=headers)
    assert response.status_code == 403
    settle(whatsapp)
    assert stored(whatsapp) == []


def test_a_body_signed_with_another_secret_or_changed_after_signing_is_refused(whatsapp, client, acme):
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(acme, statuses=[])))
    assert post(client, payload, secret="another-secret").status_code == 403
    body, headers = wa.signed(payload, SECRET)
    tampered = body.replace(acme.phone_number_id.encode(), b"999999999999999")
    assert client.post("/webhooks/whatsapp", data=tampered, headers=headers).status_code == 403
    assert stored(whatsapp) == []


def test_without_an_app_secret_nothing_is_accepted_unverified(app, client, acme):
    app.config["WHATSAPP_APP_SECRET"] = None
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(acme, statuses=[])))
    response = post(client, payload)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "webhook_not_configured"
    assert stored(app) == []


def test_a_notification_larger_than_an_api_body_is_taken_up_to_its_own_limit(whatsapp, client, acme):
    big = wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "x" * 4000}) for _ in range(100)])))
    body, headers = wa.signed(big, SECRET)
    assert whatsapp.config["MAX_CONTENT_LENGTH"] < len(body) < whatsapp.config["WHATSAPP_WEBHOOK_MAX_BYTES"]
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    whatsapp.config["WHATSAPP_WEBHOOK_MAX_BYTES"] = len(body) - 1
    try:
        assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 413
    finally:
        whatsapp.config["WHATSAPP_WEBHOOK_MAX_BYTES"] = 3 * 1024 * 1024
    settle(whatsapp)
    assert len(stored(whatsapp)) == 1


# -- statuses ------------------------------------------------------------------------------

def test_each_status_moves_the_message_and_keeps_what_it_is_charged(whatsapp, client, acme):
    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    sent = wa.status(wamid, "sent", timestamp="1750263773", category="utility")
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(acme, statuses=[sent]))))
    row = message(whatsapp, wamid)
    assert (row.status, row.sent_at) == ("sent", from_timestamp(1750263773))
    assert (row.wa_conversation_id, row.wa_conversation_origin) == ("7a7a1e7e6c1bba7b7b8f3b1a5e0ac111", "utility")
    assert row.wa_conversation_expires_at == from_timestamp(int(sent["conversation"]["expiration_timestamp"]))
    assert (row.pricing_billable, row.pricing_model, row.pricing_category, row.pricing_type) == (
        True, "PMP", "utility", "regular")

    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.status(wamid, "delivered", timestamp="1750263780")]))))
    assert message(whatsapp, wamid).status == "delivered"
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.status(wamid, "read", timestamp="1750263790", charged=False)]))))
    row = message(whatsapp, wamid)
    assert (row.status, row.delivered_at, row.read_at) == (
        "read", from_timestamp(1750263780), from_timestamp(1750263790))
    assert row.pricing_category == "utility"  # a status without pricing leaves it be


def test_statuses_never_move_backwards_in_any_order(whatsapp, client, acme):
    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    # read first, then the stale ones, then a failed that comes too late.
    for name in ("read", "delivered", "sent"):
        deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
            acme, statuses=[wa.status(wamid, name)]))))
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.failed(wamid)]))))
    row = message(whatsapp, wamid)
    assert row.status == "read"
    assert row.error_code is None and row.failed_at is None
    assert row.sent_at is not None and row.delivered_at is not None


def test_a_failed_status_keeps_its_code_title_and_details(whatsapp, client, acme):
    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(acme, statuses=[
        wa.failed(wamid, code=131049, title="This message was not delivered to maintain healthy ecosystem "
                  "engagement.", details="Meta chose not to deliver.")]))))
    row = message(whatsapp, wamid)
    assert row.status == "failed" and row.failed_at is not None
    assert (row.error_code, row.error_title, row.error_details) == (
        131049, "This message was not delivered to maintain healthy ecosystem engagement.",
        "Meta chose not to deliver.")


def test_a_late_status_after_a_failure_keeps_the_failure_and_its_error(whatsapp, client, acme):
    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.failed(wamid, code=131026)]))))
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.status(wamid, "sent", charged=False)]))))
    row = message(whatsapp, wamid)
    assert (row.status, row.error_code, row.error_title) == ("failed", 131026, "Message undeliverable")
    assert row.sent_at is not None  # the late news is kept where it says something new


def test_many_statuses_of_many_messages_apply_in_one_notification(whatsapp, client, acme):
    with whatsapp.app_context():
        wamids = [wa.add_sent_message(acme) for _ in range(34)]
        db.session.remove()
    statuses = [wa.status(w, name) for w in wamids for name in ("sent", "delivered", "read")][:100]
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(acme, statuses=statuses))))
    with whatsapp.app_context():
        states = dict(db.session.execute(select(Message.wa_message_id, Message.status)).all())
        note = db.session.scalar(select(WhatsAppNotification))
        assert note.outcome == "statuses 100"
        db.session.remove()
    assert [states[w] for w in wamids] == ["read"] * 33 + ["sent"]


def test_several_failed_statuses_apply_with_the_rest_of_their_notification(whatsapp, client, acme, caplog):
    with whatsapp.app_context():
        first, second, third, delivered = (wa.add_sent_message(acme) for _ in range(4))
        db.session.remove()
    item = wa.inbound("text", {"body": "beside three failures"})
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[item],
        statuses=[wa.failed(first, code=131026), wa.status(delivered, "delivered"), wa.failed(second, code=131049),
                  wa.failed(third, code=131050)]))))
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.error is None, row.error
    assert [(message(whatsapp, w).status, message(whatsapp, w).error_code) for w in (first, second, third)] == [
        ("failed", 131026), ("failed", 131049), ("failed", 131050)]
    assert message(whatsapp, delivered).status == "delivered"
    assert message(whatsapp, item["id"]).body_summary == "beside three failures"
    assert "item by item" not in caplog.text  # applied in one piece, not saved by the fallback


def test_a_status_for_another_tenants_message_changes_nothing(whatsapp, client, acme):
    with whatsapp.app_context():
        other = wa.add_live_number(make_tenant("starter").id, waba_id="555000111")
        theirs = wa.add_sent_message(other)
        db.session.remove()
    # Sent through acme's number: the message is not acme's.
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, statuses=[wa.failed(theirs)]))))
    assert message(whatsapp, theirs).status == "accepted"


# -- inbound messages ----------------------------------------------------------------------

@pytest.mark.parametrize("item, summary", wa.EVERY_TYPE, ids=[
    f"{m['type']}-{(m.get(m['type']) or {}).get('type', '') if isinstance(m.get(m['type']), dict) else ''}"
    for m, _ in wa.EVERY_TYPE])
def test_every_inbound_type_is_stored_with_its_summary_and_raw_json(whatsapp, client, acme, item, summary):
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[item]))))
    row = message(whatsapp, item["id"])
    assert row is not None
    assert (row.direction, row.type, row.wa_id, row.status) == ("in", item["type"], "16505551234", "received")
    assert row.body_summary == summary
    assert row.raw_message == item
    assert row.phone_number_id == acme.id and row.tenant_id == acme.tenant_id
    assert row.conversation_id is None  # an inbound message opens no billable conversation


def test_an_inbound_message_opens_the_customer_service_window_the_send_path_sees(whatsapp, client, acme):
    stamp = wa.now_ts(-3600)
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact("447700900123")],
        messages=[wa.inbound("text", {"body": "hello"}, sender="447700900123", timestamp=stamp)]))))
    written = from_timestamp(int(stamp))
    with whatsapp.app_context():
        assert customer_service_window_open(db.session, acme.tenant_id, acme.id, "447700900123", utcnow())
        assert customer_service_window_open(db.session, acme.tenant_id, acme.id, "447700900123",
                                            written + timedelta(hours=23, minutes=59))
        assert not customer_service_window_open(db.session, acme.tenant_id, acme.id, "447700900123",
                                                written + timedelta(hours=24))
        assert not customer_service_window_open(db.session, acme.tenant_id, acme.id, "447700900999", utcnow())
        # The window is the number's: another tenant, or another number, has none.
        assert not customer_service_window_open(db.session, acme.tenant_id + 1, acme.id, "447700900123", utcnow())
        assert not customer_service_window_open(db.session, acme.tenant_id, acme.id + 1, "447700900123", utcnow())
        # Nothing billed: no conversation, no usage.
        from saas.messaging.models import Conversation
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == 0
        db.session.remove()


def test_a_later_message_refreshes_the_window_and_an_earlier_one_applied_late_does_not_shorten_it(
        whatsapp, client, acme):
    early, late = wa.now_ts(-20 * 3600), wa.now_ts(-3600)
    for stamp in (late, early):  # applied out of order
        deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
            acme, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": stamp}, timestamp=stamp)]))))
    with whatsapp.app_context():
        window = db.session.scalar(select(ServiceWindow))
        assert window.last_inbound_at == from_timestamp(int(late))
        assert window.expires_at == from_timestamp(int(late)) + timedelta(hours=24)
        assert customer_service_window_open(db.session, acme.tenant_id, acme.id, "16505551234",
                                            from_timestamp(int(early)) + timedelta(hours=24, minutes=1))
        db.session.remove()


def test_a_contact_known_only_by_its_user_id_is_stored_and_gets_a_window(whatsapp, client, acme):
    user_id = "US.13491208655302741918"
    item = wa.inbound("text", {"body": "from a username"}, sender=None, user_id=user_id)
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact(None, user_id=user_id, username="@sheena")], messages=[item]))))
    row = message(whatsapp, item["id"])
    assert (row.wa_id, row.body_summary) == (user_id, "from a username")
    with whatsapp.app_context():
        assert customer_service_window_open(db.session, acme.tenant_id, acme.id, user_id, utcnow())
        db.session.remove()


def test_a_contact_with_both_a_phone_number_and_a_user_id_is_keyed_by_the_phone_number(whatsapp, client, acme):
    user_id = "US.99991208655302741918"
    item = wa.inbound("text", {"body": "both"}, sender="16505550000", user_id=user_id)
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact("16505550000", user_id=user_id)], messages=[item]))))
    assert message(whatsapp, item["id"]).wa_id == "16505550000"
    with whatsapp.app_context():
        # A send may name the contact either way: both find the window.
        assert customer_service_window_open(db.session, acme.tenant_id, acme.id, "16505550000", utcnow())
        assert customer_service_window_open(db.session, acme.tenant_id, acme.id, user_id, utcnow())
        db.session.remove()


def test_a_system_message_opens_no_window(whatsapp, client, acme):
    item, _ = next((m, s) for m, s in wa.EVERY_TYPE if m["type"] == "system")
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[dict(item, id=wa.wamid())]))))
    with whatsapp.app_context():
        assert db.session.scalar(select(func.count()).select_from(ServiceWindow)) == 0
        db.session.remove()


# -- account, number and template fields ---------------------------------------------------

def test_a_quality_update_sets_the_numbers_quality_and_messaging_limit(whatsapp, client, acme):
    display = "".join(c for c in acme.display_number if c.isdigit())
    deliver(whatsapp, client, wa.notification(acme.waba_id, wa.quality_update(display, "FLAGGED", "TIER_2K")))
    with whatsapp.app_context():
        number = db.session.get(PhoneNumber, acme.id)
        assert (number.quality_rating, number.messaging_limit_tier) == ("RED", "TIER_2K")
        entry = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "whatsapp.quality_update"))
        assert entry.tenant_id == acme.tenant_id
        db.session.remove()
    deliver(whatsapp, client, wa.notification(acme.waba_id, wa.quality_update(display, "UNFLAGGED", "TIER_10K")))
    with whatsapp.app_context():
        number = db.session.get(PhoneNumber, acme.id)
        assert (number.quality_rating, number.messaging_limit_tier) == ("GREEN", "TIER_10K")
        db.session.remove()


@pytest.mark.parametrize("change, action, words", [
    (wa.account_update(event="VERIFIED_ACCOUNT"), "whatsapp.account_update", "VERIFIED_ACCOUNT"),
    (wa.account_update(event="ACCOUNT_VIOLATION"), "whatsapp.account_update", "ACCOUNT_VIOLATION"),
    (wa.account_review_update("REJECTED"), "whatsapp.account_review_update", "REJECTED"),
])
def test_account_events_are_recorded_for_the_tenant_that_owns_the_account(whatsapp, client, acme, change, action,
                                                                           words):
    deliver(whatsapp, client, wa.notification(acme.waba_id, change))
    with whatsapp.app_context():
        entries = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        assert [(e.tenant_id, e.actor) for e in entries] == [(acme.tenant_id, "whatsapp")]
        assert words in entries[0].summary and entries[0].details["value"] == change[1]
        db.session.remove()


def test_template_updates_reach_the_tenants_copy_of_the_template(whatsapp, client, acme):
    from saas.messaging.models import Template

    with whatsapp.app_context():
        db.session.add(Template(tenant_id=acme.tenant_id, waba_id=acme.waba_id, meta_id="1689556908129832",
                                name="order_confirmation", language="en_US", status="APPROVED",
                                category="UTILITY", components=[]))
        db.session.commit()
        db.session.remove()
    deliver(whatsapp, client, wa.notification(acme.waba_id, wa.template_status_update("PAUSED")))
    deliver(whatsapp, client, wa.notification(acme.waba_id, wa.template_quality_update()))
    rows = stored(whatsapp)
    assert all(row.processed_at is not None and row.error is None for row in rows)
    with whatsapp.app_context():
        template = db.session.scalar(select(Template).where(Template.tenant_id == acme.tenant_id))
        assert (template.status, template.quality_score) == ("PAUSED", "YELLOW")
        db.session.remove()


def test_a_handler_in_the_table_is_what_applies_a_field(whatsapp, client, acme, monkeypatch):
    seen = []
    monkeypatch.setitem(notifications.FIELD_HANDLERS, "message_template_status_update",
                        lambda batch, note, waba_id, field, value: seen.append((waba_id, field, value)))
    change = wa.template_status_update("REJECTED")
    deliver(whatsapp, client, wa.notification(acme.waba_id, change))
    assert seen == [(acme.waba_id, change[0], change[1])]


def test_an_unknown_number_is_recorded_and_answered_200(whatsapp, client, acme):
    class Stranger:
        phone_number_id, display_number = "123456789012345", "+1 555-0000"

    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    payload = wa.notification("999", ("messages", wa.messages_value(
        Stranger, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "who?"})],
        statuses=[wa.failed(wamid)])))
    assert deliver(whatsapp, client, payload).status_code == 200
    (row,) = stored(whatsapp)
    assert row.processed_at is not None
    assert row.outcome == "nothing to apply; unknown numbers: 123456789012345"
    assert message(whatsapp, wamid).status == "accepted"
    with whatsapp.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 0
        db.session.remove()


def test_an_unknown_field_is_stored_and_named(whatsapp, client, acme):
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("security", {"event": "PIN_CHANGED"})))
    (row,) = stored(whatsapp)
    assert row.outcome == "nothing to apply; stored, no handler: security (unknown field)"


def test_a_signed_body_that_is_not_a_notification_is_kept_with_its_error_and_not_retried(whatsapp, client):
    body, headers = wa.signed(b"{not json", SECRET)
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(whatsapp)
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.error.startswith("not a notification")
    with whatsapp.app_context():
        assert notifications.apply_pending(older_than=timedelta(0)) == 0
        db.session.remove()


# -- duplicates and crashes ----------------------------------------------------------------

def test_a_repeated_notification_changes_nothing_more(whatsapp, client, acme):
    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    item = wa.inbound("text", {"body": "once"})
    payload = wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[item], statuses=[wa.status(wamid, "delivered")])))
    deliver(whatsapp, client, payload)
    first = message(whatsapp, wamid)
    deliver(whatsapp, client, payload)
    assert len(stored(whatsapp)) == 2
    with whatsapp.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message).where(
            Message.wa_message_id == item["id"])) == 1
        assert db.session.scalar(select(func.count()).select_from(ServiceWindow)) == 1
        db.session.remove()
    assert all(row.processed_at is not None and row.error is None for row in stored(whatsapp))
    again = message(whatsapp, wamid)
    assert (again.status, again.delivered_at, again.updated_at) == (first.status, first.delivered_at,
                                                                    first.updated_at)


def _store_and_crash(url: str, payload: bytes, headers: dict) -> None:
    """A web process that stores a notification, answers, and dies before its job runs."""
    from tests.processes import build_app

    app = build_app(url, WHATSAPP_APP_SECRET=SECRET)
    response = app.test_client().post("/webhooks/whatsapp", data=payload, headers=headers)
    assert response.status_code == 200
    os._exit(0)  # no clean-up, no background thread: as if killed


def test_a_notification_stored_before_a_crash_is_applied_by_the_sweep(whatsapp, client, acme):
    item = wa.inbound("text", {"body": "survives a crash"})
    body, headers = wa.signed(wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[item]))), SECRET)
    child = multiprocessing.get_context("spawn").Process(
        target=_store_and_crash, args=(whatsapp.config["SQLALCHEMY_DATABASE_URI"], body, headers))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    (row,) = stored(whatsapp)
    assert row.processed_at is None  # stored, answered, never applied
    assert message(whatsapp, item["id"]) is None
    with whatsapp.app_context():
        assert notifications.apply_pending(older_than=timedelta(seconds=10)) == 0  # too fresh to be lost
        assert notifications.apply_pending(older_than=timedelta(seconds=10),
                                           now=utcnow() + timedelta(seconds=11)) == 1
        db.session.remove()
    assert message(whatsapp, item["id"]).body_summary == "survives a crash"
    (row,) = stored(whatsapp)
    assert row.processed_at is not None and row.attempts == 1


def test_applied_notifications_are_pruned_after_the_retention(whatsapp, client, acme):
    deliver(whatsapp, client, wa.notification(acme.waba_id, wa.account_review_update()))
    with whatsapp.app_context():
        assert notifications.prune(keep=timedelta(days=7)) == 0
        assert notifications.prune(keep=timedelta(days=7), now=utcnow() + timedelta(days=8)) == 1
        db.session.remove()
    assert stored(whatsapp) == []


# -- bounds --------------------------------------------------------------------------------

def test_over_long_and_odd_values_are_bounded_not_refused(whatsapp, client, acme):
    long_id = "wamid." + "x" * 300
    item = wa.inbound("a-type-name-much-longer-than-thirty-characters", {"body": "x"}, sender="1" * 100)
    ok = wa.inbound("text", {"body": "y" * 5000 + "\x00"}, sender="16505551234")
    with whatsapp.app_context():
        wamid = wa.add_sent_message(acme)
        db.session.remove()
    weird_status = wa.failed(wamid, title="t" * 1000, details="d" * 2000, code=2**40)
    deliver(whatsapp, client, wa.notification(acme.waba_id, ("messages", wa.messages_value(
        acme, contacts=[wa.contact()], messages=[item, ok, dict(ok, id=long_id)], statuses=[weird_status]))))
    (row,) = stored(whatsapp)
    assert row.error is None, row.error
    assert row.outcome == "messages 1; statuses 1; kept unapplied 2"
    assert [(k.location, k.error.split(" (")[0], k.next_try_at) for k in kept_items(whatsapp)] == [
        ("entry 0, change 0, messages[0]", "no usable sender", None),
        ("entry 0, change 0, messages[2]", "no usable id", None)]
    kept = message(whatsapp, ok["id"])
    assert len(kept.body_summary) == 300 and "\x00" not in kept.body_summary
    failed = message(whatsapp, wamid)
    assert failed.status == "failed" and failed.error_code is None
    assert len(failed.error_title) == 300 and len(failed.error_details) == 500


# -- with Redis: applied by the RQ worker ----------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/5"  # a database of its own: db 0 is shared


def test_with_redis_the_worker_applies_what_the_web_process_stored(whatsapp, acme):
    redis = pytest.importorskip("redis")
    from rq import SimpleWorker

    from tests.processes import build_app

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    web = build_app(whatsapp.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=REDIS_URL, WHATSAPP_APP_SECRET=SECRET)
    queue = web.extensions["rq_queue"]
    queue.empty()
    try:
        item = wa.inbound("text", {"body": "through Redis"})
        response = post(web.test_client(), wa.notification(acme.waba_id, ("messages", wa.messages_value(
            acme, contacts=[wa.contact()], messages=[item]))))
        assert response.status_code == 200
        assert web.extensions["background"].join()
        assert queue.count == 1 and message(whatsapp, item["id"]) is None  # queued, not applied by the web process
        with web.app_context():
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
        assert message(whatsapp, item["id"]).body_summary == "through Redis"
        (row,) = stored(whatsapp)
        assert row.processed_at is not None and row.error is None
    finally:
        queue.empty()
        with web.app_context():
            db.engine.dispose()


def test_flask_whatsapp_apply_pending_applies_what_is_left(whatsapp, runner, acme):
    item = wa.inbound("text", {"body": "left behind"})
    with whatsapp.app_context():
        db.session.add(WhatsAppNotification(body=wa.body_of(wa.notification(acme.waba_id, ("messages", wa.messages_value(
            acme, contacts=[wa.contact()], messages=[item])))).decode(), received_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        db.session.remove()
    result = runner.invoke(args=["whatsapp", "apply-pending"])
    assert result.exit_code == 0, result.output
    assert "Applied 1 stored notifications." in result.output
    assert message(whatsapp, item["id"]).body_summary == "left behind"


# -- what another process left waiting -------------------------------------------------------

def _left_waiting(app, acme, text: str, *, age: timedelta, attempts: int = 0) -> dict:
    """A notification another process stored ``age`` ago and has not applied (its queue is behind)."""
    item = wa.inbound("text", {"body": text})
    with app.app_context():
        db.session.add(WhatsAppNotification(body=wa.body_of(wa.notification(acme.waba_id, ("messages", wa.messages_value(
            acme, contacts=[wa.contact()], messages=[item])))).decode(), received_at=utcnow() - age,
            attempts=attempts))
        db.session.commit()
        db.session.remove()
    return item


def test_a_notification_left_waiting_past_the_share_time_is_taken_by_any_process(whatsapp, acme):
    waited = _left_waiting(whatsapp, acme, "waited", age=timedelta(seconds=1))
    fresh = _left_waiting(whatsapp, acme, "just stored", age=timedelta(0))
    failed = _left_waiting(whatsapp, acme, "failed before", age=timedelta(seconds=1), attempts=1)
    with whatsapp.app_context():
        assert notifications.apply_waiting(older_than=timedelta(milliseconds=250)) == 1
        assert notifications.apply_waiting(older_than=timedelta(milliseconds=250)) == 0  # applied once
        db.session.remove()
    assert message(whatsapp, waited["id"]).body_summary == "waited"
    # Its own process still has the fresh one in its queue; a failed one is the sweep's, tried on its schedule.
    assert message(whatsapp, fresh["id"]) is None and message(whatsapp, failed["id"]) is None


def test_every_process_takes_what_waits_unless_sharing_is_off(whatsapp, acme):
    from saas import create_app

    waited = _left_waiting(whatsapp, acme, "taken by housekeeping", age=timedelta(seconds=1))
    url = whatsapp.config["SQLALCHEMY_DATABASE_URI"]
    off = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "HOUSEKEEPING": True,
                      "WHATSAPP_SHARE_SECONDS": 0.0})
    on = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "HOUSEKEEPING": True,
                     "WHATSAPP_SHARE_SECONDS": 0.5})
    try:
        assert "WhatsApp notifications waiting" not in {task[0] for task in off.extensions["background"]._tasks}
        tasks = {task[0]: task for task in on.extensions["background"]._tasks}
        assert tasks["WhatsApp notifications waiting"][1] == 0.5
        with on.app_context():
            tasks["WhatsApp notifications waiting"][2]()
    finally:
        for process in (off, on):
            with process.app_context():
                db.engine.dispose()
    assert message(whatsapp, waited["id"]).body_summary == "taken by housekeeping"


def test_a_notification_being_applied_elsewhere_is_skipped_not_waited_for(whatsapp, acme, backend):
    if backend != "postgresql":
        pytest.skip("row locks held by another connection: PostgreSQL")
    from sqlalchemy import create_engine

    item = _left_waiting(whatsapp, acme, "applied by its own process", age=timedelta(seconds=1))
    (row,) = stored(whatsapp)
    other = create_engine(whatsapp.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with other.connect() as conn:  # the process that stored it is applying it: the row is locked
            conn.execute(select(WhatsAppNotification.id).where(WhatsAppNotification.id == row.id).with_for_update())

            def take():
                with whatsapp.app_context():
                    notifications.apply_waiting(older_than=timedelta(milliseconds=250))
                    db.session.remove()

            taker = threading.Thread(target=take)
            taker.start()
            taker.join(10)
            waited = taker.is_alive()
            conn.rollback()
            taker.join(10)
            assert not waited, "waited for the row another process holds"
            assert message(whatsapp, item["id"]) is None
    finally:
        other.dispose()
    with whatsapp.app_context():
        assert notifications.apply_waiting(older_than=timedelta(milliseconds=250)) == 1
        db.session.remove()
    assert message(whatsapp, item["id"]).body_summary == "applied by its own process"
