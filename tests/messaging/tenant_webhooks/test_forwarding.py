"""Forwarding to the tenant's own webhook, against a real HTTP server on loopback.

Rules: Meta's payload shape filtered to the tenant's numbers, signed with the
tenant's secret; retries on the schedule, then dead; a message's events in
order; replay; no loopback/private/link-local targets unless allowed; https in
production; no redirects; the plan's ``webhooks`` feature; tenants see only
their own deliveries.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import re
import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from saas.billing.services import assign_plan
from saas.extensions import db
from saas.messaging.tenant_webhooks import delivery, endpoints
from saas.messaging.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WhatsAppNotification
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.conftest import csrf_token
from tests.factories import make_tenant, sender, settle
from tests.webhook_receiver import Receiver
from tests.webhooks.test_whatsapp_inbound import SECRET, deliver

PASSWORD = "correct horse"


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def forwarding(app):
    """WhatsApp's secret set, loopback targets allowed, short timeouts; settings put back after."""
    names = ("WHATSAPP_APP_SECRET", "WEBHOOK_ALLOW_PRIVATE_TARGETS", "WEBHOOK_CONNECT_TIMEOUT",
             "WEBHOOK_READ_TIMEOUT", "WEBHOOK_RETRY_SCHEDULE", "APP_ENV")
    saved = {name: app.config.get(name) for name in names}
    app.config.update(WHATSAPP_APP_SECRET=SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, WEBHOOK_CONNECT_TIMEOUT=1.0,
                      WEBHOOK_READ_TIMEOUT=0.5)
    yield app
    app.config.update(saved)


class Tenant_:
    """A tenant with a live number and a webhook endpoint (its secret as shown once)."""

    def __init__(self, app, receiver, plan="starter", waba_id="102290129340398"):
        with app.app_context():
            tenant = make_tenant(plan)
            self.id, self.email = tenant.id, tenant.users[0].email
            self.number = wa.add_live_number(tenant.id, waba_id=waba_id)
            self.secret = None
            if receiver is not None:
                _, self.secret = endpoints.save_endpoint(tenant, receiver.url)
            db.session.remove()


def tenant_with_endpoint(app, receiver, **kwargs) -> Tenant_:
    return Tenant_(app, receiver, **kwargs)


def run_deliveries(app, now=None) -> int:
    with app.app_context():
        tried = delivery.deliver_due(now=now or utcnow(), wait_for_answers=True)
        db.session.remove()
    return tried


def deliveries(app, tenant_id=None) -> list[WebhookDelivery]:
    with app.app_context():
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        if tenant_id is not None:
            query = query.where(WebhookDelivery.tenant_id == tenant_id)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
    return rows


def statuses_of(acme, wamid, *names):
    return wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, statuses=[wa.status(wamid, name) for name in names])))


def signature_ok(received, secret) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-Hub-Signature-256"], expected)


# -- what is forwarded ---------------------------------------------------------------------

def test_statuses_and_inbound_messages_go_out_in_metas_shape_signed_with_the_tenants_secret(
        forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        wamid = wa.add_sent_message(acme.number)
        db.session.remove()
    status = wa.status(wamid, "delivered")
    item = wa.inbound("text", {"body": "hello there"})
    contact = wa.contact(name="Kerry Fisher")
    value = wa.messages_value(acme.number, contacts=[contact], messages=[item], statuses=[status])
    value["metadata"]["display_phone_number"] = "15550783881"  # WhatsApp's way of writing it, passed on as is
    metadata = value["metadata"]
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", value)))
    assert run_deliveries(forwarding) == 2
    assert len(receiver.received) == 2
    bodies = sorted((r.json for r in receiver.received), key=lambda b: "statuses" in str(b))
    assert bodies == [
        {"object": "whatsapp_business_account", "entry": [{"id": acme.number.waba_id, "changes": [{
            "value": {"messaging_product": "whatsapp", "metadata": metadata, "contacts": [contact],
                      "messages": [item]}, "field": "messages"}]}]},
        {"object": "whatsapp_business_account", "entry": [{"id": acme.number.waba_id, "changes": [{
            "value": {"messaging_product": "whatsapp", "metadata": metadata, "statuses": [status]},
            "field": "messages"}]}]},
    ]
    for received in receiver.received:
        assert received.path == "/hooks/whatsapp"
        assert received.headers["Content-Type"] == "application/json"
        assert signature_ok(received, acme.secret)
        assert not signature_ok(received, "another secret")
    assert {d.state for d in deliveries(forwarding)} == {"delivered"}


def test_each_tenant_gets_only_the_events_of_its_own_numbers(forwarding, client, receiver):
    other_receiver = Receiver().start()
    try:
        acme = tenant_with_endpoint(forwarding, receiver)
        globex = tenant_with_endpoint(forwarding, other_receiver, waba_id="777000111")
        ours, theirs = wa.inbound("text", {"body": "to acme"}), wa.inbound("text", {"body": "to globex"})
        payload = {"object": "whatsapp_business_account", "entry": [
            {"id": acme.number.waba_id, "changes": [{"field": "messages", "value": wa.messages_value(
                acme.number, contacts=[wa.contact()], messages=[ours])}]},
            {"id": globex.number.waba_id, "changes": [{"field": "messages", "value": wa.messages_value(
                globex.number, contacts=[wa.contact()], messages=[theirs])}]}]}
        deliver(forwarding, client, payload)
        run_deliveries(forwarding)
        assert [r.json["entry"][0]["changes"][0]["value"]["messages"][0]["id"] for r in receiver.received] == [
            ours["id"]]
        assert [r.json["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
                for r in other_receiver.received] == [theirs["id"]]
        assert [r.json["entry"][0]["id"] for r in other_receiver.received] == [globex.number.waba_id]
    finally:
        other_receiver.stop()


def test_a_repeated_notification_is_forwarded_once(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    payload = wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "once"})])))
    deliver(forwarding, client, payload)
    deliver(forwarding, client, payload)
    run_deliveries(forwarding)
    assert len(deliveries(forwarding)) == 1
    assert len(receiver.received) == 1
    with forwarding.app_context():
        notes = db.session.execute(select(WhatsAppNotification.processed_at, WhatsAppNotification.error)).all()
        db.session.remove()
    assert len(notes) == 2 and all(processed and error is None for processed, error in notes)


def test_the_sandbox_status_walk_is_forwarded_in_the_same_shape(forwarding, client, receiver):
    acme = sender(client, "starter")
    with forwarding.app_context():
        endpoints.save_endpoint(db.session.get(Tenant, acme.tenant_id), receiver.url)
        db.session.remove()
    response = acme.send(to="15551230001")
    assert response.status_code == 200
    wamid = response.get_json()["messages"][0]["id"]
    settle(forwarding)
    for _ in range(3):  # one event of the message at a time, in order
        run_deliveries(forwarding)
    assert receiver.events() == [("status", "sent"), ("status", "delivered"), ("status", "read")]
    first = receiver.received[0].json
    value = first["entry"][0]["changes"][0]["value"]
    assert first["object"] == "whatsapp_business_account" and first["entry"][0]["id"] == "0"
    assert value["metadata"]["phone_number_id"] == acme.number
    status = value["statuses"][0]
    assert (status["id"], status["recipient_id"]) == (wamid, "15551230001")
    assert status["conversation"]["origin"] == {"type": "service"}
    assert "expiration_timestamp" in status["conversation"]
    assert status["pricing"] == {"billable": False, "pricing_model": "PMP", "category": "service",
                                 "type": "free_customer_service"}
    assert "pricing" not in receiver.received[2].json["entry"][0]["changes"][0]["value"]["statuses"][0]


def test_a_paused_endpoint_gets_no_new_events(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        endpoints.pause(db.session.get(Tenant, acme.id))
        db.session.remove()
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "unheard"})]))))
    run_deliveries(forwarding)
    assert deliveries(forwarding) == [] and receiver.received == []


# -- failures, retries, order --------------------------------------------------------------

def test_failed_tries_wait_on_the_schedule_then_the_delivery_goes_when_the_endpoint_recovers(
        forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        wamid = wa.add_sent_message(acme.number)
        db.session.remove()
    receiver.answers = [500, 503, 500]
    deliver(forwarding, client, statuses_of(acme, wamid, "sent"))
    t0 = utcnow()
    assert run_deliveries(forwarding, t0) == 1
    (d,) = deliveries(forwarding)
    assert (d.state, d.attempts, d.last_status, d.next_attempt_at) == ("pending", 1, 500, t0 + timedelta(seconds=60))
    assert d.last_error == "HTTP 500: receiver says no"
    assert run_deliveries(forwarding, t0 + timedelta(seconds=59)) == 0  # not due yet
    assert run_deliveries(forwarding, t0 + timedelta(seconds=60)) == 1
    (d,) = deliveries(forwarding)
    assert (d.attempts, d.last_status, d.next_attempt_at) == (2, 503, t0 + timedelta(seconds=60 + 300))
    assert run_deliveries(forwarding, t0 + timedelta(seconds=360)) == 1
    (d,) = deliveries(forwarding)
    assert d.next_attempt_at == t0 + timedelta(seconds=360 + 900)
    assert run_deliveries(forwarding, t0 + timedelta(seconds=1260)) == 1
    (d,) = deliveries(forwarding)
    assert (d.state, d.attempts, d.last_status, d.last_error) == ("delivered", 4, 200, None)
    assert len(receiver.received) == 4
    assert len({r.body for r in receiver.received}) == 1  # the same bytes every time
    with forwarding.app_context():
        tries = [(a.number, a.status) for a in db.session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id))]
        db.session.remove()
    assert tries == [(1, 500), (2, 503), (3, 500), (4, 200)]


def test_a_slow_endpoint_times_out_and_is_tried_again(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    receiver.answers = [("slow", 2.0, 200)]
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "slow"})]))))
    t0 = utcnow()
    run_deliveries(forwarding, t0)
    (d,) = deliveries(forwarding)
    assert (d.state, d.last_status, d.last_error) == ("pending", None, "no answer within 0.5 s")
    assert d.next_attempt_at == t0 + timedelta(seconds=60)
    run_deliveries(forwarding, t0 + timedelta(seconds=60))
    assert deliveries(forwarding)[0].state == "delivered"


def test_an_endpoint_that_refuses_connections_is_a_failed_try(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with forwarding.app_context():
        endpoints.save_endpoint(db.session.get(Tenant, acme.id), f"http://127.0.0.1:{closed_port}/hook")
        db.session.remove()
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "nobody home"})]))))
    run_deliveries(forwarding)
    (d,) = deliveries(forwarding)
    assert d.state == "pending" and d.last_error.startswith("ConnectionRefusedError")


def test_a_later_event_of_a_message_waits_until_the_earlier_one_is_delivered(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        first, second = wa.add_sent_message(acme.number), wa.add_sent_message(acme.number)
        db.session.remove()
    deliver(forwarding, client, statuses_of(acme, first, "sent", "delivered"))
    deliver(forwarding, client, statuses_of(acme, second, "sent"))
    receiver.default = 500
    t0 = utcnow()
    assert run_deliveries(forwarding, t0) == 2  # first's sent and second's sent; first's delivered waits
    assert sorted(receiver.events()) == [("status", "sent"), ("status", "sent")]
    assert run_deliveries(forwarding, t0 + timedelta(hours=1)) == 2  # still only the heads
    waiting = [d for d in deliveries(forwarding) if d.event_type == "status.delivered"]
    assert [(d.attempts, d.state) for d in waiting] == [(0, "pending")]
    receiver.default = 200
    receiver.received.clear()
    assert run_deliveries(forwarding, t0 + timedelta(hours=2)) == 2
    assert run_deliveries(forwarding, t0 + timedelta(hours=2)) == 1  # now the delivered of the first
    assert receiver.events() == [("status", "sent"), ("status", "sent"), ("status", "delivered")]
    assert receiver.received[2].json["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] == first
    assert {d.state for d in deliveries(forwarding)} == {"delivered"}


def test_a_delivery_is_dead_after_the_last_try_and_the_messages_next_event_then_goes(forwarding, client, receiver):
    forwarding.config["WEBHOOK_RETRY_SCHEDULE"] = (10, 20)  # three tries
    acme = tenant_with_endpoint(forwarding, receiver)
    with forwarding.app_context():
        wamid = wa.add_sent_message(acme.number)
        db.session.remove()
    deliver(forwarding, client, statuses_of(acme, wamid, "sent", "read"))
    receiver.answers = [500, 500, 500]
    t0 = utcnow()
    for at in (0, 10, 30):
        assert run_deliveries(forwarding, t0 + timedelta(seconds=at)) == 1
    sent, read = deliveries(forwarding)
    assert (sent.state, sent.attempts, sent.dead_at, sent.next_attempt_at) == (
        "dead", 3, t0 + timedelta(seconds=30), None)
    assert read.attempts == 0
    assert run_deliveries(forwarding, t0 + timedelta(seconds=31)) == 1
    assert [d.state for d in deliveries(forwarding)] == ["dead", "delivered"]
    assert receiver.events() == [("status", "sent")] * 3 + [("status", "read")]


def test_a_secret_that_cannot_be_decrypted_is_a_failed_try(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "unsigned"})]))))
    saved = forwarding.config["TOKEN_ENCRYPTION_KEY"]
    forwarding.config["TOKEN_ENCRYPTION_KEY"] = "x9Gj0eKqk0p2M1o5Y2m2f8qVZ0jv3QXb6Zy9yQ1K8fU="  # another key
    try:
        run_deliveries(forwarding)
    finally:
        forwarding.config["TOKEN_ENCRYPTION_KEY"] = saved
    (d,) = deliveries(forwarding)
    assert (d.state, d.attempts) == ("pending", 1) and d.last_error.startswith("cannot sign")
    assert receiver.received == []  # nothing unsigned goes out


def test_a_redirect_is_not_followed(forwarding, client, receiver):
    elsewhere = Receiver().start()
    try:
        acme = tenant_with_endpoint(forwarding, receiver)
        receiver.answers = [("redirect", elsewhere.url)]
        deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
            acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "stay"})]))))
        run_deliveries(forwarding)
        (d,) = deliveries(forwarding)
        assert (d.state, d.last_status, d.last_error) == ("pending", 302, "HTTP 302 (redirects are not followed)")
        assert elsewhere.received == []
    finally:
        elsewhere.stop()


# -- where a URL may point -----------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "https://127.0.0.2/hook", "http://10.1.2.3/hook", "http://192.168.0.10/hook",
    "http://172.16.5.4/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://[fe80::1]/hook",
    "http://[fd00::1]/hook", "http://0.0.0.0/hook", "http://100.64.0.1/hook", "http://[::ffff:127.0.0.1]/hook",
    "http://localhost:5000/hook",
])
def test_private_loopback_and_link_local_urls_are_refused_unless_allowed(app, url):
    with app.app_context():
        tenant = make_tenant("starter")
        with pytest.raises(endpoints.EndpointError):
            endpoints.save_endpoint(tenant, url)
        assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
        app.config["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = True
        try:
            endpoint, _ = endpoints.save_endpoint(tenant, url)
            assert endpoint.url == url
        finally:
            app.config["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = False
        db.session.remove()


@pytest.mark.parametrize("url, why", [
    ("ftp://example.com/hook", "must start with https://"), ("https://user:pw@example.com/hook", "user name"),
    ("https:///hook", "no host"), ("https://example.com:99999/hook", "port"), ("https://exa mple.com/", "spaces"),
    ("https://example.com/" + "a" * 2048, "2048"), ("https://bücher.example/hook", "punycode"),
])
def test_malformed_urls_are_refused(app, url, why):
    with app.app_context():
        with pytest.raises(endpoints.EndpointError, match=why):
            endpoints.check_url(url)


def test_a_host_name_that_resolves_to_loopback_is_refused_when_delivering(forwarding, client, receiver):
    acme = tenant_with_endpoint(forwarding, None)
    with forwarding.app_context():
        # Saved while allowed (as in local work); the rule is back on when it is sent.
        endpoints.save_endpoint(db.session.get(Tenant, acme.id), f"http://localhost:{receiver.port}/hook")
        db.session.remove()
    forwarding.config["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = False
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "ssrf?"})]))))
    run_deliveries(forwarding)
    (d,) = deliveries(forwarding)
    assert d.state == "pending" and d.last_status is None
    assert re.match(r"refused: localhost resolves to a non-public address \((127\.0\.0\.1|::1)\)", d.last_error)
    assert receiver.received == []  # never connected
    forwarding.config["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = True
    run_deliveries(forwarding, utcnow() + timedelta(minutes=2))
    assert deliveries(forwarding)[0].state == "delivered" and len(receiver.received) == 1


def test_public_addresses_are_the_ones_allowed():
    assert endpoints.public_address("93.184.216.34") and endpoints.public_address("2606:2800:220:1::248")
    assert endpoints.public_address("::ffff:93.184.216.34")  # an IPv4 address written as IPv6 is judged as IPv4
    for address in ("127.0.0.1", "10.0.0.1", "169.254.1.1", "::1", "fe80::1%eth0", "224.0.0.1", "::ffff:10.0.0.1",
                    "not an address"):
        assert not endpoints.public_address(address), address


def test_https_is_required_in_production_unless_private_targets_are_allowed(app):
    with app.app_context():
        app.config["APP_ENV"] = "production"
        try:
            with pytest.raises(endpoints.EndpointError, match="https"):
                endpoints.check_url("http://hooks.example.com/whatsapp")
            assert endpoints.check_url("https://hooks.example.com/whatsapp")
            app.config["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = True
            assert endpoints.check_url("http://hooks.example.com/whatsapp")
        finally:
            app.config.update(APP_ENV="development", WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
        assert endpoints.check_url("http://hooks.example.com/whatsapp")  # http is fine outside production


# -- the portal ----------------------------------------------------------------------------

SECRET_ON_PAGE = re.compile(r'<p class="secret" id="new-secret-value">([^<]+)</p>')


def login_as(app, auth, plan="starter"):
    with app.app_context():
        tenant = make_tenant(plan, password=PASSWORD)
        tenant_id, email = tenant.id, tenant.users[0].email
        db.session.remove()
    auth.login(email, PASSWORD)
    return tenant_id


def test_a_tenant_registers_its_url_and_sees_the_secret_once(forwarding, client, auth, receiver):
    tenant_id = login_as(forwarding, auth)
    response = client.post("/webhooks", data={"csrf_token": csrf_token(client, "/webhooks"), "url": receiver.url})
    assert response.status_code == 201
    secret = html.unescape(SECRET_ON_PAGE.search(response.get_data(as_text=True)).group(1))
    assert secret.startswith("whsec_")
    page = client.get("/webhooks").get_data(as_text=True)
    assert secret not in page and f"…{secret[-4:]}" in page
    with forwarding.app_context():
        endpoint = db.session.scalar(select(WebhookEndpoint))
        assert (endpoint.tenant_id, endpoint.url) == (tenant_id, receiver.url)
        assert secret not in endpoint.signing_secret_encrypted
        db.session.remove()

    rotated = client.post("/webhook-secret", data={"csrf_token": csrf_token(client, "/webhooks")})
    assert rotated.status_code == 200
    new_secret = html.unescape(SECRET_ON_PAGE.search(rotated.get_data(as_text=True)).group(1))
    assert new_secret != secret
    with forwarding.app_context():
        number = wa.add_live_number(tenant_id)
        db.session.remove()
    deliver(forwarding, client, wa.notification(number.waba_id, ("messages", wa.messages_value(
        number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "signed anew"})]))))
    run_deliveries(forwarding)
    assert signature_ok(receiver.received[0], new_secret) and not signature_ok(receiver.received[0], secret)


def test_the_url_form_says_what_is_wrong_next_to_the_field(app, client, auth):
    login_as(app, auth)
    response = client.post("/webhooks", data={"csrf_token": csrf_token(client, "/webhooks"),
                                              "url": "http://169.254.169.254/latest"})
    assert response.status_code == 400
    assert 'id="url-error">The URL points at a private, loopback or link-local address.' in response.get_data(
        as_text=True)
    assert client.post("/webhooks", data={"url": "https://hooks.example.com/"}).status_code == 400  # no CSRF token


def test_the_portal_lists_deliveries_with_their_tries_and_replays_one(forwarding, client, auth, receiver):
    tenant_id = login_as(forwarding, auth)
    with forwarding.app_context():
        endpoints.save_endpoint(db.session.get(Tenant, tenant_id), receiver.url)
        number = wa.add_live_number(tenant_id)
        wamid = wa.add_sent_message(number)
        db.session.remove()
    forwarding.config["WEBHOOK_RETRY_SCHEDULE"] = (10,)
    receiver.default = 500
    deliver(forwarding, client, wa.notification(number.waba_id, ("messages", wa.messages_value(
        number, statuses=[wa.status(wamid, "sent")]))))
    t0 = utcnow()
    run_deliveries(forwarding, t0)
    run_deliveries(forwarding, t0 + timedelta(seconds=10))
    (dead,) = deliveries(forwarding)
    assert dead.state == "dead"
    page = client.get("/webhooks").get_data(as_text=True)
    row = re.search(rf'<a href="/webhook-deliveries/{dead.id}">.*?</tr>', page, re.S).group(0)
    assert "status.sent" in row and "dead" in row and '<td data-label="Tries">2</td>' in row and "receiver says no" in row
    detail = client.get(f"/webhook-deliveries/{dead.id}").get_data(as_text=True)
    assert detail.count("HTTP 500: receiver says no") == 2 and wamid in detail

    receiver.default = 200
    response = client.post(f"/webhook-deliveries/{dead.id}/replay",
                           data={"csrf_token": csrf_token(client, "/webhooks")})
    assert response.status_code == 302
    original, copy = deliveries(forwarding)
    assert (original.state, copy.state, copy.replay_of, copy.payload) == ("dead", "pending", dead.id, dead.payload)
    run_deliveries(forwarding)
    assert deliveries(forwarding)[1].state == "delivered"
    assert receiver.received[-1].body == receiver.received[0].body
    assert client.post(f"/webhook-deliveries/{dead.id}/replay", data={}).status_code == 400  # CSRF


def test_a_tenant_never_sees_or_replays_another_tenants_deliveries(forwarding, client, auth, receiver):
    other = tenant_with_endpoint(forwarding, receiver)
    deliver(forwarding, client, wa.notification(other.number.waba_id, ("messages", wa.messages_value(
        other.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "private"})]))))
    (theirs,) = deliveries(forwarding)
    login_as(forwarding, auth)
    assert client.get(f"/webhook-deliveries/{theirs.id}").status_code == 404
    token = csrf_token(client, "/webhooks")
    assert client.post(f"/webhook-deliveries/{theirs.id}/replay", data={"csrf_token": token}).status_code == 404
    assert client.get("/webhook-deliveries/99999999999999999999999").status_code == 404
    page = client.get("/webhooks").get_data(as_text=True)
    assert theirs.wa_message_id not in page and 'id="no-deliveries"' in page
    assert len(deliveries(forwarding)) == 1


def test_a_plan_without_webhooks_shows_why_and_forwards_nothing(forwarding, client, auth, receiver):
    tenant_id = login_as(forwarding, auth, plan="free")
    page = client.get("/webhooks")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "does not include webhooks" in text and 'id="upgrade-link"' in text and 'href="/billing"' in text
    token = csrf_token(client, "/dashboard")
    response = client.post("/webhooks", data={"csrf_token": token, "url": receiver.url})
    assert response.status_code == 403
    with forwarding.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
        # An endpoint kept from a plan that had webhooks forwards nothing once the plan has none.
        tenant = db.session.get(Tenant, tenant_id)
        assign_plan(tenant, "starter", actor="cli")
        endpoints.save_endpoint(tenant, receiver.url)
        assign_plan(tenant, "free", actor="cli")
        number = wa.add_live_number(tenant_id)
        db.session.remove()
    deliver(forwarding, client, wa.notification(number.waba_id, ("messages", wa.messages_value(
        number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "not forwarded"})]))))
    run_deliveries(forwarding)
    assert deliveries(forwarding) == [] and receiver.received == []
    assert client.get(f"/webhook-deliveries/1").status_code == 403


def test_flask_webhooks_deliver_sends_what_is_due_and_waits_for_the_answers(forwarding, client, runner, receiver):
    acme = tenant_with_endpoint(forwarding, receiver)
    deliver(forwarding, client, wa.notification(acme.number.waba_id, ("messages", wa.messages_value(
        acme.number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "by hand"})]))))
    result = runner.invoke(args=["webhooks", "deliver"])
    assert result.exit_code == 0, result.output
    assert "Tried 1 deliveries." in result.output
    assert deliveries(forwarding)[0].state == "delivered" and len(receiver.received) == 1
