"""WhatsApp's rules, enforced before Meta's refusals: refused with Meta's code, nothing sent upstream, nothing billed.

The customer-service window (131047), the pair rate (131056), the messaging
limit (131048), and templates that are unknown (132001), not approved (132001),
paused (132015) or disabled (132016). Live numbers send through the loopback
Graph API, so "no upstream call" is what the fake saw; sandbox numbers follow
the same rules.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.outbound.rules import SANDBOX_SILENT_RECIPIENT, PairRate, messaging_limit
from saas.messaging.outbound.windows import customer_service_window_open
from saas.timeutil import utcnow
from tests.contacts.consent.factories import opt_in
from tests.factories import sender, usage_values
from tests.messaging.live import add_template, inbound, live_number, template_payload, text_payload
from tests.metering.test_concurrency import pg_only, run_in_parallel  # noqa: F401

CONTACT = "15551230001"


def messages_of(app, tenant_id, **where) -> list:
    with app.app_context():
        query = select(Message).where(Message.tenant_id == tenant_id)
        for column, value in where.items():
            query = query.where(getattr(Message, column) == value)
        rows = [(m.wa_id, m.direction, m.status, m.business_initiated) for m in db.session.scalars(query)]
        db.session.remove()
    return rows


def billed(app, tenant_id) -> dict:
    values = usage_values(app, tenant_id)
    return {k: v for k, v in values.items() if v}


def graph_error(response) -> dict:
    error = response.get_json()["error"]
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["fbtrace_id"] == response.headers["X-Request-Id"]
    return error


@pytest.fixture
def acme(client):
    return sender(client, "starter")


@pytest.fixture
def acme_live(app, live, acme):
    """acme's live number: (phone_number_id, pk, waba_id, token)."""
    return live_number(app, live, acme.tenant_id)


# -- the customer-service window (131047) ---------------------------------------------------------

def test_free_form_outside_the_window_is_refused_like_meta_on_the_cloud_endpoint(app, live, acme, acme_live):
    response = acme.send(to=CONTACT, number=acme_live[0])
    assert response.status_code == 400
    error = graph_error(response)
    assert error["code"] == 131047
    assert error["message"] == "(#131047) Re-engagement message"
    assert error["error_data"]["details"] == (
        "More than 24 hours have passed since the recipient last replied to the sender number.")
    assert error["reason"] == "outside_customer_service_window"
    assert live.sends() == []
    assert billed(app, acme.tenant_id) == {}
    assert messages_of(app, acme.tenant_id) == []


def test_free_form_outside_the_window_is_refused_in_the_v1_envelope(app, live, acme, acme_live):
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        **text_payload(CONTACT), "phone_number_id": acme_live[0]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "outside_customer_service_window"
    assert error["details"]["whatsapp_code"] == 131047
    assert "template" in error["message"]
    assert live.sends() == []


def test_free_form_inside_the_window_goes_out_and_is_billed_as_service(app, live, acme, acme_live):
    inbound(app, acme.tenant_id, acme_live[1], CONTACT, utcnow() - timedelta(hours=23, minutes=59))
    response = acme.send(to=CONTACT, number=acme_live[0])
    assert response.status_code == 200, response.get_json()
    assert [s["to"] for s in live.sends()] == [CONTACT]
    assert billed(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.service": 1}


def test_the_window_closes_24_hours_after_the_contacts_last_message(app, live, acme, acme_live):
    inbound(app, acme.tenant_id, acme_live[1], CONTACT, utcnow() - timedelta(hours=24, seconds=1))
    assert acme.send(to=CONTACT, number=acme_live[0]).status_code == 400
    assert live.sends() == []


def test_only_that_contact_writing_to_that_number_opens_it(app, live, acme, acme_live):
    other_number = live_number(app, live, acme.tenant_id)
    inbound(app, acme.tenant_id, other_number[1], CONTACT)          # wrote to another number
    inbound(app, acme.tenant_id, acme_live[1], "15551230002")       # another contact wrote
    assert acme.send(to=CONTACT, number=acme_live[0]).status_code == 400
    assert acme.send(to=CONTACT, number=other_number[0]).status_code == 200
    assert acme.send(to="15551230002", number=acme_live[0]).status_code == 200
    assert len(live.sends()) == 2


def test_another_tenants_inbound_opens_nothing(app, live, client, acme, acme_live):
    other = sender(client, "starter")
    other_live = live_number(app, live, other.tenant_id)
    inbound(app, other.tenant_id, other_live[1], CONTACT)
    assert acme.send(to=CONTACT, number=acme_live[0]).status_code == 400
    assert other.send(to=CONTACT, number=other_live[0]).status_code == 200


def test_templates_go_outside_the_window_as_business_initiated(app, live, acme, acme_live):
    live.add_template(acme_live[2], "order_shipped", category="UTILITY")
    add_template(app, acme.tenant_id, acme_live[2], "order_shipped", category="UTILITY")
    response = acme.send(number=acme_live[0], payload=template_payload(CONTACT, "order_shipped"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["messages"][0]["message_status"] == "accepted"
    assert [s["type"] for s in live.sends()] == ["template"]
    assert messages_of(app, acme.tenant_id) == [(CONTACT, "out", "accepted", True)]
    assert billed(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.utility": 1}


def test_a_template_inside_the_window_is_not_business_initiated(app, live, acme, acme_live):
    live.add_template(acme_live[2], "order_shipped")
    add_template(app, acme.tenant_id, acme_live[2], "order_shipped")
    inbound(app, acme.tenant_id, acme_live[1], CONTACT)
    assert acme.send(number=acme_live[0], payload=template_payload(CONTACT, "order_shipped")).status_code == 200
    assert messages_of(app, acme.tenant_id, direction="out") == [(CONTACT, "out", "accepted", False)]


def test_the_window_check_reads_the_latest_inbound_message(app, acme, acme_live):
    now = utcnow()
    with app.app_context():
        def is_open():
            return customer_service_window_open(db.session, acme.tenant_id, acme_live[1], CONTACT, now)

        assert not is_open()
        db.session.remove()
    inbound(app, acme.tenant_id, acme_live[1], CONTACT, now - timedelta(hours=30))
    with app.app_context():
        assert not is_open()
        db.session.remove()
    inbound(app, acme.tenant_id, acme_live[1], CONTACT, now - timedelta(hours=2))
    with app.app_context():
        assert is_open()
        assert not customer_service_window_open(db.session, acme.tenant_id, acme_live[1], CONTACT,
                                                now + timedelta(hours=22, seconds=1))
        db.session.remove()


# -- the sandbox follows the same rules, its recipients writing first ------------------------------

def test_a_newcomers_first_sandbox_message_goes_out(app, client):
    newcomer = sender(client)
    assert newcomer.send(to="15551234567", body="Hello from the sandbox").status_code == 200


def test_a_sandbox_recipients_window_closes_24_hours_after_it_first_wrote(app, client):
    acme = sender(client, "starter")
    assert acme.send(to=CONTACT).status_code == 200
    with app.app_context():
        for message in db.session.scalars(select(Message)):
            message.created_at -= timedelta(hours=25)
        db.session.commit()
        db.session.remove()
    refused = acme.send(to=CONTACT)
    assert refused.status_code == 400 and graph_error(refused)["code"] == 131047
    # Templates still reach it, and a message from the contact opens the window again.
    assert acme.send(payload=template_payload(CONTACT, "hello_world")).status_code == 200
    with app.app_context():
        number_pk = db.session.scalar(select(Message.phone_number_id).where(Message.tenant_id == acme.tenant_id))
        db.session.remove()
    inbound(app, acme.tenant_id, number_pk, CONTACT)
    assert acme.send(to=CONTACT).status_code == 200
    assert billed(app, acme.tenant_id)["messages"] == 3


def test_the_silent_sandbox_recipient_never_wrote(app, client):
    acme = sender(client, "starter")
    refused = acme.send(to=SANDBOX_SILENT_RECIPIENT)
    assert refused.status_code == 400 and graph_error(refused)["code"] == 131047
    assert billed(app, acme.tenant_id) == {}
    sent = acme.send(payload=template_payload(SANDBOX_SILENT_RECIPIENT, "hello_world"))
    assert sent.status_code == 200
    assert messages_of(app, acme.tenant_id) == [(SANDBOX_SILENT_RECIPIENT, "out", "accepted", True)]


def test_a_sandbox_template_first_is_business_initiated(app, client):
    acme = sender(client, "starter")
    assert acme.send(payload=template_payload(CONTACT, "hello_world")).status_code == 200
    assert acme.send(to=CONTACT).status_code == 200  # then the recipient "writes" with the first free-form
    assert acme.send(payload=template_payload(CONTACT, "hello_world")).status_code == 200
    assert [row[3] for row in messages_of(app, acme.tenant_id)] == [True, False, False]


# -- the pair rate (131056) -----------------------------------------------------------------------

def test_pair_rate_allows_a_burst_then_refuses_with_retry_after(app, live, pair_rate, acme, acme_live):
    inbound(app, acme.tenant_id, acme_live[1], CONTACT)
    statuses = [acme.send(to=CONTACT, number=acme_live[0], body=f"m{n}").status_code for n in range(5)]
    assert statuses == [200] * 5
    refused = acme.send(to=CONTACT, number=acme_live[0], body="one too many")
    assert refused.status_code == 429
    error = graph_error(refused)
    assert error["code"] == 131056
    assert error["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    assert error["reason"] == "pair_rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 30
    assert len(live.sends()) == 5
    assert billed(app, acme.tenant_id)["messages"] == 5


def test_pair_rate_is_per_contact(app, live, pair_rate, acme, acme_live):
    for contact in (CONTACT, "15551230002"):
        inbound(app, acme.tenant_id, acme_live[1], contact)
    for n in range(5):
        acme.send(to=CONTACT, number=acme_live[0], body=f"m{n}")
    assert acme.send(to=CONTACT, number=acme_live[0]).status_code == 429
    assert acme.send(to="15551230002", number=acme_live[0]).status_code == 200


def test_pair_rate_is_per_number_and_tenants_never_share_it(app, client, pair_rate):
    acme, other = sender(client, "starter"), sender(client, "starter")
    for n in range(5):
        assert acme.send(to=CONTACT, body=f"m{n}").status_code == 200
    assert acme.send(to=CONTACT).status_code == 429
    assert [other.send(to=CONTACT, body=f"m{n}").status_code for n in range(5)] == [200] * 5


def test_pair_rate_in_the_v1_envelope(app, client, pair_rate):
    acme = sender(client, "starter")
    for n in range(5):
        acme.client.post("/api/v1/messages", headers=acme.headers, json=text_payload(CONTACT, f"m{n}"))
    refused = acme.client.post("/api/v1/messages", headers=acme.headers, json=text_payload(CONTACT))
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "pair_rate_limited"
    assert error["details"]["whatsapp_code"] == 131056
    assert int(refused.headers["Retry-After"]) == error["details"]["retry_after"]
    assert billed(app, acme.tenant_id)["messages"] == 5


def test_pair_rate_refills_one_message_per_interval(app):
    rate = PairRate(burst=2, seconds=1.0)
    assert [rate.take("1", CONTACT) for _ in range(2)] == [None, None]
    wait = rate.take("1", CONTACT)
    assert wait is not None and 1 <= wait <= 2
    time.sleep(2.05)
    assert rate.take("1", CONTACT) is None


def test_a_replayed_idempotent_send_takes_no_place(app, client, pair_rate):
    acme = sender(client, "starter")
    for n in range(5):
        assert acme.send(to=CONTACT, idempotency_key="order-1").status_code == 200
    assert acme.send(to=CONTACT, idempotency_key="order-2").status_code == 200


@pytest.fixture(scope="module")
def redis_url():
    """A real Redis on a free loopback port, for as long as this module's tests run."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_pair_rate_in_redis_is_shared_by_every_process(redis_url):
    from limits.storage import storage_from_string

    # Two processes' stores: the same Redis.
    first = PairRate(storage_from_string(redis_url), burst=5, seconds=6.0)
    second = PairRate(storage_from_string(redis_url), burst=5, seconds=6.0)
    assert [first.take("100", CONTACT) for _ in range(3)] == [None] * 3
    assert [second.take("100", CONTACT) for _ in range(2)] == [None] * 2
    wait = first.take("100", CONTACT)
    assert wait is not None and 0 < wait <= 30
    assert second.take("100", "15551230002") is None
    assert second.take("200", CONTACT) is None


def test_a_pair_rate_store_that_is_down_lets_sends_go(app):
    from limits.storage import storage_from_string

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rate = PairRate(storage_from_string(f"redis://127.0.0.1:{port}"), burst=1, seconds=6.0)
    assert [rate.take("1", CONTACT) for _ in range(3)] == [None] * 3


# -- the messaging limit (131048) -----------------------------------------------------------------

def reach(app, tenant_id, number_pk, contacts, *, at=None, status="delivered"):
    """Business-initiated templates this number sent to ``contacts`` (as earlier sends would have written)."""
    at = at or utcnow() - timedelta(hours=1)
    with app.app_context():
        db.session.add_all([Message(tenant_id=tenant_id, phone_number_id=number_pk, direction="out", wa_id=c,
                                    type="template", body_summary="template", status=status,
                                    business_initiated=True, created_at=at, updated_at=at) for c in contacts])
        db.session.commit()
        db.session.remove()


def users(n, prefix="1555700"):
    return [f"{prefix}{i:04d}" for i in range(n)]


@pytest.mark.parametrize("tier, mode, limit", [
    ("TIER_250", "live", 250), ("TIER_2K", "live", 2000), ("TIER_10K", "live", 10_000),
    ("TIER_100K", "live", 100_000), ("TIER_1K", "live", 1000), ("TIER_UNLIMITED", "live", None),
    (None, "live", None), ("TIER_SOMETHING_NEW", "live", None), (None, "sandbox", 250),
])
def test_messaging_limit_tiers(tier, mode, limit):
    assert messaging_limit(tier, mode) == limit


@pytest.fixture
def at_limit(app, live, acme):
    """acme's TIER_250 number, with 250 users reached in the last 24 h and an approved template."""
    number = live_number(app, live, acme.tenant_id, tier="TIER_250")
    live.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    reach(app, acme.tenant_id, number[1], users(250))
    return number


def test_a_new_user_past_the_messaging_limit_is_refused_without_an_upstream_call(app, live, acme, at_limit):
    response = acme.send(number=at_limit[0], payload=template_payload("15559990000", "order_shipped"))
    assert response.status_code == 429
    error = graph_error(response)
    assert error["code"] == 131048
    assert error["reason"] == "messaging_limit_reached"
    assert error["details"]["messaging_limit"] == 250 and error["details"]["users_reached"] == 250
    # The earliest reached user leaves the moving window 23 h from now.
    assert 22 * 3600 < int(response.headers["Retry-After"]) <= 23 * 3600
    assert live.sends() == []
    assert billed(app, acme.tenant_id) == {}


def test_users_already_reached_can_still_be_sent_templates(app, live, acme, at_limit):
    response = acme.send(number=at_limit[0], payload=template_payload(users(250)[17], "order_shipped"))
    assert response.status_code == 200, response.get_json()
    assert len(live.sends()) == 1


def test_replies_inside_the_window_are_never_limited(app, live, acme, at_limit):
    inbound(app, acme.tenant_id, at_limit[1], "15559990000")
    assert acme.send(to="15559990000", number=at_limit[0]).status_code == 200
    assert acme.send(number=at_limit[0], payload=template_payload("15559990000", "order_shipped")).status_code == 200


def test_the_limit_counts_per_number(app, live, acme, at_limit):
    other = live_number(app, live, acme.tenant_id, tier="TIER_250", waba_id=at_limit[2])
    response = acme.send(number=other[0], payload=template_payload("15559990000", "order_shipped"))
    assert response.status_code == 200, response.get_json()


def test_failed_and_day_old_sends_free_their_place(app, live, acme):
    number = live_number(app, live, acme.tenant_id, tier="TIER_250")
    live.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    reach(app, acme.tenant_id, number[1], users(248))
    reach(app, acme.tenant_id, number[1], users(5, "1555800"), status="failed")
    reach(app, acme.tenant_id, number[1], users(5, "1555900"), at=utcnow() - timedelta(hours=24, minutes=1))
    statuses = [acme.send(number=number[0], payload=template_payload(f"155599900{n}", "order_shipped")).status_code
                for n in range(3)]
    assert statuses == [200, 200, 429]


def test_the_limit_counts_what_this_server_sent(app, live, acme):
    number = live_number(app, live, acme.tenant_id, tier="TIER_250")
    live.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    reach(app, acme.tenant_id, number[1], users(248))
    for n in range(2):
        assert acme.send(number=number[0], payload=template_payload(f"155599900{n}", "order_shipped")).status_code \
            == 200
    assert acme.send(number=number[0], payload=template_payload("1555999009", "order_shipped")).status_code == 429
    assert acme.send(number=number[0], payload=template_payload("1555999001", "order_shipped")).status_code == 200


def test_a_refused_upstream_send_does_not_count(app, live, acme):
    number = live_number(app, live, acme.tenant_id, tier="TIER_250")
    live.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    reach(app, acme.tenant_id, number[1], users(249))
    live.fail("POST", "/messages", code=131026)
    assert acme.send(number=number[0], payload=template_payload("1555999000", "order_shipped")).status_code == 400
    assert acme.send(number=number[0], payload=template_payload("1555999001", "order_shipped")).status_code == 200


def test_sandbox_numbers_have_the_250_limit(app, client):
    acme = sender(client, "starter")
    with app.app_context():
        from saas.messaging.models import PhoneNumber

        number = db.session.scalar(select(PhoneNumber).where(PhoneNumber.tenant_id == acme.tenant_id))
        assert number.messaging_limit_tier == "TIER_250"
        pk = number.id
        db.session.remove()
    reach(app, acme.tenant_id, pk, users(250))
    refused = acme.send(payload=template_payload("15559990000", "hello_world"))
    assert refused.status_code == 429 and graph_error(refused)["code"] == 131048
    assert acme.send(payload=template_payload(users(250)[0], "hello_world")).status_code == 200


def test_an_unlimited_number_is_not_limited(app, live, acme):
    number = live_number(app, live, acme.tenant_id, tier="TIER_UNLIMITED")
    live.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    reach(app, acme.tenant_id, number[1], users(300))
    assert acme.send(number=number[0], payload=template_payload("15559990000", "order_shipped")).status_code == 200
    assert messages_of(app, acme.tenant_id, wa_id="15559990000") == [("15559990000", "out", "accepted", True)]


def test_the_limit_in_the_v1_envelope(app, live, acme, at_limit):
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        **template_payload("15559990000", "order_shipped"), "phone_number_id": at_limit[0]})
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert error["code"] == "messaging_limit_reached"
    assert error["details"]["whatsapp_code"] == 131048
    assert int(response.headers["Retry-After"]) > 0


def test_parallel_sends_to_new_users_never_pass_the_limit(pg_only, app, live, acme):
    number = live_number(app, live, acme.tenant_id, tier="TIER_250")
    live.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    reach(app, acme.tenant_id, number[1], users(245))

    def send_to(n):
        return lambda c: c.post(f"/v23.0/{number[0]}/messages", headers=acme.headers,
                                json=template_payload(f"155599{n:05d}", "order_shipped")).status_code

    statuses = run_in_parallel(app, [send_to(n) for n in range(24)])
    assert statuses.count(200) == 5 and statuses.count(429) == 19, statuses
    assert len(live.sends()) == 5
    with app.app_context():
        reached = db.session.scalar(select(func.count(func.distinct(Message.wa_id))).where(
            Message.phone_number_id == number[1], Message.business_initiated.is_(True)))
        db.session.remove()
    assert reached == 250


# -- templates on send (132001, 132015, 132016) ---------------------------------------------------

def test_an_unknown_template_is_refused_like_132001(app, live, acme, acme_live):
    response = acme.send(number=acme_live[0], payload=template_payload(CONTACT, "no_such_template"))
    assert response.status_code == 404
    error = graph_error(response)
    assert error["code"] == 132001
    assert error["message"] == "(#132001) Template name does not exist in the translation"
    assert error["reason"] == "template_not_found"
    assert live.sends() == [] and billed(app, acme.tenant_id) == {}


def test_a_template_in_another_language_is_unknown(app, live, acme, acme_live):
    add_template(app, acme.tenant_id, acme_live[2], "order_shipped", language="en_US")
    response = acme.send(number=acme_live[0], payload=template_payload(CONTACT, "order_shipped", "pt_BR"))
    assert response.status_code == 404 and graph_error(response)["code"] == 132001


@pytest.mark.parametrize("status, http, code, reason", [
    ("PENDING", 400, 132001, "template_not_approved"),
    ("REJECTED", 400, 132001, "template_not_approved"),
    ("IN_APPEAL", 400, 132001, "template_not_approved"),
    ("PAUSED", 400, 132015, "template_paused"),
    ("DISABLED", 400, 132016, "template_disabled"),
])
def test_an_unapproved_template_is_refused_before_the_upstream_call(app, live, acme, acme_live, status, http, code,
                                                                     reason):
    live.add_template(acme_live[2], "order_shipped", status=status)
    add_template(app, acme.tenant_id, acme_live[2], "order_shipped", status=status)
    response = acme.send(number=acme_live[0], payload=template_payload(CONTACT, "order_shipped"))
    assert response.status_code == http
    error = graph_error(response)
    assert (error["code"], error["reason"]) == (code, reason)
    assert error["details"]["status"] == status
    assert live.sends() == [] and billed(app, acme.tenant_id) == {}


def test_unapproved_templates_in_the_v1_envelope(app, live, acme, acme_live):
    add_template(app, acme.tenant_id, acme_live[2], "order_shipped", status="PENDING")
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        **template_payload(CONTACT, "order_shipped"), "phone_number_id": acme_live[0]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "template_not_approved"
    assert error["details"] == {"whatsapp_code": 132001, "template": "order_shipped", "language": "en_US",
                                "status": "PENDING"}


@pytest.mark.parametrize("category, metric", [
    ("UTILITY", "conversations.utility"), ("MARKETING", "conversations.marketing"),
    ("AUTHENTICATION", "conversations.authentication"),
])
def test_a_template_send_is_metered_in_its_templates_category(app, live, acme, acme_live, category, metric):
    live.add_template(acme_live[2], "the_template", category=category)
    add_template(app, acme.tenant_id, acme_live[2], "the_template", category=category)
    opt_in(app, acme.tenant_id, acme_live[1], CONTACT)  # a marketing template needs it
    assert acme.send(number=acme_live[0], payload=template_payload(CONTACT, "the_template")).status_code == 200
    assert billed(app, acme.tenant_id) == {"messages": 1, "conversations": 1, metric: 1}
    usage = acme.get("/api/v1/usage").get_json()
    assert usage["by_category"][category.lower()] == 1


def test_each_category_opens_its_own_window(app, live, acme, acme_live):
    for name, category in (("util", "UTILITY"), ("promo", "MARKETING"), ("otp", "AUTHENTICATION")):
        live.add_template(acme_live[2], name, category=category)
        add_template(app, acme.tenant_id, acme_live[2], name, category=category)
    opt_in(app, acme.tenant_id, acme_live[1], CONTACT)
    for name in ("util", "promo", "otp", "util", "promo"):
        assert acme.send(number=acme_live[0], payload=template_payload(CONTACT, name)).status_code == 200
    usage = acme.get("/api/v1/usage").get_json()
    assert usage["by_category"] == {"marketing": 1, "utility": 1, "authentication": 1, "service": 0}
    assert usage["messages"] == 5


@pytest.mark.parametrize("name, status, code, metric", [
    ("hello_world", 200, None, "conversations.utility"),
    ("seasonal_promotion", 200, None, "conversations.marketing"),
    ("verification_code", 200, None, "conversations.authentication"),
    ("no_such_template", 404, 132001, None),
    ("sandbox_paused", 400, 132015, None),
    ("sandbox_disabled", 400, 132016, None),
])
def test_sandbox_built_in_templates(app, client, name, status, code, metric):
    acme = sender(client, "starter")
    opt_in(app, acme.tenant_id, acme.number, CONTACT)
    response = acme.send(payload=template_payload(CONTACT, name))
    assert response.status_code == status
    if code:
        assert graph_error(response)["code"] == code
        assert billed(app, acme.tenant_id) == {}
    else:
        assert billed(app, acme.tenant_id)[metric] == 1


def test_another_tenants_template_is_unknown(app, live, client, acme, acme_live):
    other = sender(client, "starter")
    other_live = live_number(app, live, other.tenant_id)
    live.add_template(other_live[2], "their_template")
    add_template(app, other.tenant_id, other_live[2], "their_template")
    response = acme.send(number=acme_live[0], payload=template_payload(CONTACT, "their_template"))
    assert response.status_code == 404 and graph_error(response)["code"] == 132001
    assert other.send(number=other_live[0], payload=template_payload(CONTACT, "their_template")).status_code == 200


def test_a_status_webhook_is_honoured_by_the_next_send(app, live, acme, acme_live):
    from saas.messaging.templates.updates import apply_template_webhook

    live.add_template(acme_live[2], "order_shipped")
    add_template(app, acme.tenant_id, acme_live[2], "order_shipped", meta_id="777000111")
    assert acme.send(number=acme_live[0], payload=template_payload(CONTACT, "order_shipped")).status_code == 200
    with app.app_context():
        apply_template_webhook(acme_live[2], "message_template_status_update", {
            "event": "PAUSED", "message_template_id": 777000111, "message_template_name": "order_shipped",
            "message_template_language": "en_US", "reason": "LOW_QUALITY"})
        db.session.remove()
    paused = acme.send(number=acme_live[0], payload=template_payload("15551230002", "order_shipped"))
    assert paused.status_code == 400 and graph_error(paused)["code"] == 132015
    assert len(live.sends()) == 1


def test_the_rules_come_before_the_upstream_call(app, graph, acme):
    """A send WhatsApp would refuse is refused as WhatsApp would, and never reaches Graph."""
    number = live_number(app, graph, acme.tenant_id)
    refused = acme.send(to=CONTACT, number=number[0])
    assert refused.status_code == 400 and graph_error(refused)["code"] == 131047
    assert graph.sends() == []
    inbound(app, acme.tenant_id, number[1], CONTACT)
    assert acme.send(to=CONTACT, number=number[0]).status_code == 200
    assert len(graph.sends()) == 1


# -- the rules' queries are served by indexes (PostgreSQL EXPLAIN) ---------------------------------

def _rule_queries():
    from datetime import datetime

    from saas.messaging.outbound import rules, windows
    from saas.messaging.models import Template

    contact = {"tenant_id": 1, "number_id": 1, "contact": "15551230001"}
    since = {"tenant_id": 1, "number_id": 1, "contact": "15551230001", "since": datetime(2026, 11, 1)}
    return {
        "contact's latest inbound": windows._LAST_INBOUND.params(contact),
        "contact's first free-form": windows._FIRST_FREE_FORM.params(contact),
        "user already reached": rules.ALREADY_REACHED.params(since),
        "users reached": rules.USERS_REACHED.params(since),
        "template for a send": select(Template.status).where(
            Template.tenant_id == 1, Template.waba_id == "1", Template.name == "x", Template.language == "en_US"),
        "template of a webhook": select(Template.id).where(Template.waba_id == "1", Template.meta_id == "1"),
    }


@pytest.mark.parametrize("name", list(_rule_queries()))
def test_the_rules_queries_use_an_index(backend, app, name):
    if backend != "postgresql":
        pytest.skip("plans are checked on PostgreSQL, the production database")
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    sql = str(_rule_queries()[name].compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with app.app_context():
        with db.engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql)))
    assert "Seq Scan" not in plan, plan
