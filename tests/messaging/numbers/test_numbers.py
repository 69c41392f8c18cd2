"""Live numbers: connecting against the Graph API, testing, disconnecting, token encryption and rotation.

The Graph API is the loopback fake (fixture ``graph``): a number answers
only to the token it was registered with, as Meta's does.
"""
from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from saas import cache
from saas.audit.models import AuditEvent
from saas.billing.services import assign_plan
from saas.config import ConfigError, load, token_keys
from saas.errors import NotFound
from saas.extensions import db
from saas.messaging.numbers import connections
from saas.messaging import services as messaging
from saas.messaging.models import MODE_LIVE, Message, PhoneNumber
from saas.crypto import TokenUnreadable, decrypt_token, encrypt_token
from saas.messaging.numbers.phone_numbers import sending_number
from saas.tenants.models import Tenant
from saas.tenants.services import tenant_snapshot
from tests.factories import make_tenant, row_counts, sender

pytestmark = pytest.mark.usefixtures("graph")


# -- helpers -----------------------------------------------------------------------

def tenant_id_on(plan: str) -> int:
    tenant = make_tenant(plan)
    return tenant.id


def connect(app, tenant_id, phone_number_id, token, waba_id="102290129340398"):
    """Connect through the service as the tenant's owner would; returns the outcome or the refusal."""
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        try:
            outcome = connections.connect_number(tenant, tenant.users[0], phone_number_id=phone_number_id,
                                                 waba_id=waba_id, token=token,
                                                 lookup=app.extensions["number_info"])
            return outcome.number.id
        except connections.ConnectRefused as refusal:
            return refusal
        finally:
            db.session.remove()


def refused(result) -> connections.ConnectRefused:
    assert isinstance(result, connections.ConnectRefused), f"expected a refusal, got {result!r}"
    return result


def number_row(app, row_id) -> dict:
    with app.app_context():
        row = db.session.get(PhoneNumber, row_id)
        values = {c.name: getattr(row, c.name) for c in PhoneNumber.__table__.columns}
        db.session.remove()
    return values


def audit_actions(app, tenant_id) -> list[str]:
    with app.app_context():
        actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant_id,
                                                                          AuditEvent.action.like("number.%"))
                                          .order_by(AuditEvent.id)))
        db.session.remove()
    return actions


def writes(app) -> dict:
    """Everything a refused connect must leave alone: account rows and the audit log."""
    counts = row_counts(app)
    with app.app_context():
        counts["audit_events"] = db.session.scalar(select(func.count()).select_from(AuditEvent))
        counts["live"] = db.session.scalar(select(func.count()).select_from(PhoneNumber)
                                           .where(PhoneNumber.mode == MODE_LIVE))
        db.session.remove()
    return counts


@pytest.fixture
def starter(app):
    with app.app_context():
        tenant_id = tenant_id_on("starter")
        db.session.remove()
    return tenant_id


@pytest.fixture
def quick_graph(app):
    """Graph API calls that give up after 0.3 s of silence (the default is 20 s)."""
    saved = app.config["WHATSAPP_TIMEOUT_SECONDS"]
    app.config["WHATSAPP_TIMEOUT_SECONDS"] = 0.3
    yield
    app.config["WHATSAPP_TIMEOUT_SECONDS"] = saved


@pytest.fixture
def keys(app):
    """Set TOKEN_ENCRYPTION_KEY for a test (a list of keys, joined as the environment gives them)."""
    saved = app.config["TOKEN_ENCRYPTION_KEY"]

    def use(*fernet_keys):
        app.config["TOKEN_ENCRYPTION_KEY"] = ",".join(fernet_keys)

    yield use
    app.config["TOKEN_ENCRYPTION_KEY"] = saved


def add_message(app, tenant_id, row_id) -> int:
    """A message already sent from the number (as the live transport would have written it)."""
    with app.app_context():
        message = Message(tenant_id=tenant_id, phone_number_id=row_id, direction="out", wa_id="15551234567",
                          type="text", body_summary="Your order shipped", status="delivered",
                          wa_message_id="wamid.HBgLtestlive" + str(row_id))
        db.session.add(message)
        db.session.commit()
        message_id = message.id
        db.session.remove()
    return message_id


# -- connecting ----------------------------------------------------------------------

def test_connect_checks_the_number_with_graph_and_stores_the_token_encrypted(app, graph, starter):
    meta = graph.add_number("106540352242922", waba_id="102290129340398", display_phone_number="+1 415-555-0123",
                            verified_name="Acme Shoes", quality_rating="GREEN", messaging_limit_tier="TIER_1K")
    row_id = connect(app, starter, meta.phone_number_id, meta.token, waba_id=meta.waba_id)

    row = number_row(app, row_id)
    assert row["tenant_id"] == starter and row["mode"] == MODE_LIVE and row["waba_id"] == meta.waba_id
    assert row["access_token_encrypted"] != meta.token and meta.token not in row["access_token_encrypted"]
    with app.app_context():
        assert decrypt_token(row["access_token_encrypted"]) == meta.token
    assert row["token_last4"] == meta.token[-4:]
    assert (row["display_number"], row["verified_name"], row["quality_rating"], row["messaging_limit_tier"]) == (
        "+1 415-555-0123", "Acme Shoes", "GREEN", "TIER_1K")
    assert row["last_checked_at"] is not None and row["disconnected_at"] is None

    [call] = graph.requests("GET", f"/{meta.phone_number_id}")
    assert call.path == f"/v23.0/{meta.phone_number_id}"
    assert call.headers["Authorization"] == f"Bearer {meta.token}"
    assert call.query["fields"] == ["display_phone_number,verified_name,quality_rating,messaging_limit_tier,"
                                    "code_verification_status"]


def test_the_stored_ciphertext_is_a_fernet_token_of_the_first_key(app, graph, starter, keys):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(first, second)
    meta = graph.add_number()
    row = number_row(app, connect(app, starter, meta.phone_number_id, meta.token))
    assert Fernet(first.encode()).decrypt(row["access_token_encrypted"].encode()).decode() == meta.token


@pytest.mark.parametrize("case, field, meta_says", [
    ("wrong token", "access_token", "Error validating access token"),
    ("unknown number", "phone_number_id", "does not exist"),
    ("permission 10", "access_token", "(#10) Permission denied"),
    ("permission 200", "access_token", "(#200) Permissions error"),
])
def test_a_graph_error_is_refused_with_metas_message_and_nothing_is_written(app, graph, starter, case, field,
                                                                            meta_says):
    meta = graph.add_number()
    phone_number_id, token = meta.phone_number_id, meta.token
    if case == "wrong token":
        token = "EAAGwrongtoken1234"
    elif case == "unknown number":
        phone_number_id = "199999999999999"
    else:
        graph.fail("GET", f"/{phone_number_id}", code=int(case.split()[-1]))
    before = writes(app)

    refusal = refused(connect(app, starter, phone_number_id, token))

    assert refusal.field == field
    assert meta_says in refusal.message and refusal.message.startswith("WhatsApp refused (code ")
    assert writes(app) == before


def test_graph_not_answering_in_time_is_refused_and_nothing_is_written(app, graph, starter, quick_graph):
    meta = graph.add_number()
    graph.delay("GET", f"/{meta.phone_number_id}", seconds=1.0)
    before = writes(app)
    started = time.monotonic()

    refusal = refused(connect(app, starter, meta.phone_number_id, meta.token))

    assert time.monotonic() - started < 0.9, "the read timeout setting was not applied"
    assert "did not answer within 0.3 seconds" in refusal.message and refusal.field is None
    assert writes(app) == before


def test_a_dropped_connection_or_an_unexplained_5xx_is_refused_not_raised(app, graph, starter):
    meta = graph.add_number()
    graph.drop("GET", f"/{meta.phone_number_id}")
    assert "could not be reached" in refused(connect(app, starter, meta.phone_number_id, meta.token)).message
    graph.fail("GET", f"/{meta.phone_number_id}", status=503)
    assert "WhatsApp refused (code 2)" in refused(connect(app, starter, meta.phone_number_id, meta.token)).message
    assert audit_actions(app, starter) == []


def test_graph_unreachable_is_refused(app, starter):
    saved = app.config["WHATSAPP_GRAPH_URL"]
    # A loopback port nothing listens on: the connection is refused at once.
    app.config["WHATSAPP_GRAPH_URL"] = "http://127.0.0.1:9"
    try:
        refusal = refused(connect(app, starter, "106540352242922", "EAAGsometoken"))
    finally:
        app.config["WHATSAPP_GRAPH_URL"] = saved
    assert "could not be reached" in refusal.message


@pytest.mark.parametrize("phone_number_id, waba_id, token, field", [
    ("1065403\x0052242922", "102290129340398", "EAAGtoken", "phone_number_id"),
    ("1" * 65, "102290129340398", "EAAGtoken", "phone_number_id"),
    ("+1 415 555 0123", "102290129340398", "EAAGtoken", "phone_number_id"),
    ("１０６５４０３５２２４２９２２", "102290129340398", "EAAGtoken", "phone_number_id"),
    ("١٠٦٥٤٠", "102290129340398", "EAAGtoken", "phone_number_id"),
    ("", "102290129340398", "EAAGtoken", "phone_number_id"),
    ("106540352242922", "waba-1", "EAAGtoken", "waba_id"),
    ("106540352242922", "2" * 65, "EAAGtoken", "waba_id"),
    ("106540352242922", "102290129340398", "EAAG tok", "access_token"),
    ("106540352242922", "102290129340398", "EAAG\x00tok", "access_token"),
    ("106540352242922", "102290129340398", "EAAGtöken", "access_token"),
    ("106540352242922", "102290129340398", "EAAG\r\nX-Injected: 1", "access_token"),
    ("106540352242922", "102290129340398", "E" * 1025, "access_token"),
    ("106540352242922", "102290129340398", "", "access_token"),
])
def test_malformed_input_is_refused_before_graph_is_asked(app, graph, starter, phone_number_id, waba_id, token,
                                                         field):
    before = writes(app)
    refusal = refused(connect(app, starter, phone_number_id, token, waba_id=waba_id))
    assert refusal.field == field
    assert graph.calls == []
    assert writes(app) == before


def test_the_longest_accepted_inputs_fit_their_columns(app, graph, starter):
    meta = graph.add_number("1" * 64, waba_id="2" * 64, token="E" * 1024,
                            display_phone_number="+" + "9" * 40, verified_name="V" * 300,
                            quality_rating="Q" * 50, messaging_limit_tier="T" * 50)
    row = number_row(app, connect(app, starter, meta.phone_number_id, meta.token, waba_id=meta.waba_id))
    assert (row["phone_number_id"], row["waba_id"]) == ("1" * 64, "2" * 64)
    assert len(row["display_number"]) == 32 and len(row["verified_name"]) == 200
    assert len(row["quality_rating"]) == 20 and len(row["messaging_limit_tier"]) == 30


# -- the plan's allowance ----------------------------------------------------------------

def test_the_free_plan_connects_no_live_number_and_graph_is_not_asked(app, graph):
    with app.app_context():
        free = tenant_id_on("free")
        db.session.remove()
    meta = graph.add_number()
    refusal = refused(connect(app, free, meta.phone_number_id, meta.token))
    assert refusal.field is None and "need a paid plan" in refusal.message
    assert graph.calls == []


def test_starter_connects_one_live_number_and_the_sandbox_does_not_count(app, graph, starter):
    first, second = graph.add_number(), graph.add_number()
    assert isinstance(connect(app, starter, first.phone_number_id, first.token), int)
    before = writes(app)

    refusal = refused(connect(app, starter, second.phone_number_id, second.token))

    assert "Starter plan allows 1 live number and 1 is connected" in refusal.message
    assert graph.requests("GET", f"/{second.phone_number_id}") == []
    assert writes(app) == before


def test_pro_connects_as_many_as_its_plan_allows(app, graph):
    with app.app_context():
        pro = tenant_id_on("pro")
        db.session.remove()
    metas = [graph.add_number() for _ in range(6)]
    results = [connect(app, pro, m.phone_number_id, m.token) for m in metas]
    assert all(isinstance(r, int) for r in results[:5])
    assert "Pro plan allows 5 live numbers and 5 are connected" in refused(results[5]).message


def test_a_suspended_tenant_connects_nothing(app, graph, starter):
    with app.app_context():
        db.session.execute(text("UPDATE tenants SET status = 'suspended' WHERE id = :t"), {"t": starter})
        db.session.commit()
        cache.clear_all()
        db.session.remove()
    meta = graph.add_number()
    assert "suspended" in refused(connect(app, starter, meta.phone_number_id, meta.token)).message


def test_a_tenant_fallen_back_to_free_rights_connects_nothing(app, graph, starter):
    with app.app_context():
        db.session.execute(text("UPDATE subscriptions SET status = 'unpaid' WHERE tenant_id = :t"), {"t": starter})
        db.session.commit()
        cache.clear_all()
        db.session.remove()
    meta = graph.add_number()
    assert "need a paid plan" in refused(connect(app, starter, meta.phone_number_id, meta.token)).message


def test_connecting_a_connected_number_again_replaces_its_token_and_takes_no_room(app, graph, starter):
    meta = graph.add_number()
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    meta.token = "EAAGrenewedtoken9876"

    assert connect(app, starter, meta.phone_number_id, meta.token) == row_id

    row = number_row(app, row_id)
    with app.app_context():
        assert decrypt_token(row["access_token_encrypted"]) == "EAAGrenewedtoken9876"
    assert row["token_last4"] == "9876"
    assert audit_actions(app, starter) == ["number.connected", "number.token_replaced"]


def racing_connects(app, graph, tenant_id: int, count: int) -> list:
    """``count`` of Meta's numbers connected to the tenant at once; what each connect gave (see connect)."""
    metas = [graph.add_number() for _ in range(count)]
    # Every connect passes the first look at the allowance while Meta is slow to answer.
    graph.latency = 0.3
    barrier = threading.Barrier(len(metas))

    def attempt(meta):
        barrier.wait()
        return connect(app, tenant_id, meta.phone_number_id, meta.token)

    with ThreadPoolExecutor(len(metas)) as pool:
        return list(pool.map(attempt, metas))


def test_connects_racing_for_the_last_place_on_the_plan_get_it_once(app, graph, backend):
    if backend != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL with real parallel connections")
    with app.app_context():
        pro = tenant_id_on("pro")
        db.session.remove()
    results = racing_connects(app, graph, pro, 8)
    assert sum(isinstance(r, int) for r in results) == 5
    assert all("allows 5 live numbers" in r.message for r in results if not isinstance(r, int))
    with app.app_context():
        assert connections.allowance(db.session.get(Tenant, pro)).used == 5
        db.session.remove()


# -- numbers that are not the tenant's to connect ----------------------------------------

def test_a_number_connected_to_another_tenant_is_refused(app, graph, starter):
    with app.app_context():
        other = tenant_id_on("starter")
        db.session.remove()
    meta = graph.add_number()
    row_id = connect(app, other, meta.phone_number_id, meta.token)
    before = writes(app)

    refusal = refused(connect(app, starter, meta.phone_number_id, meta.token))

    assert refusal.field == "phone_number_id" and "registered to another account" in refusal.message
    assert writes(app) == before
    assert number_row(app, row_id)["tenant_id"] == other


def test_a_number_another_tenant_disconnected_stays_theirs(app, graph, starter):
    with app.app_context():
        other = tenant_id_on("starter")
        db.session.remove()
    meta = graph.add_number()
    row_id = connect(app, other, meta.phone_number_id, meta.token)
    disconnect(app, other, row_id)

    refusal = refused(connect(app, starter, meta.phone_number_id, meta.token))

    assert "registered to another account" in refusal.message
    assert number_row(app, row_id)["tenant_id"] == other


def test_another_tenants_number_is_refused_only_once_graph_vouches_for_the_token(app, graph, starter):
    with app.app_context():
        other = tenant_id_on("starter")
        db.session.remove()
    meta = graph.add_number()
    connect(app, other, meta.phone_number_id, meta.token)
    # Without a token that sees the number, the answer is Meta's, and says nothing of our tenants.
    refusal = refused(connect(app, starter, meta.phone_number_id, "EAAGguessing"))
    assert refusal.field == "access_token" and "another account" not in refusal.message


def test_the_tenants_own_sandbox_number_cannot_be_connected_as_live(app, graph):
    with app.app_context():
        tenant_id = tenant_id_on("starter")
        sandbox_id = db.session.scalar(select(PhoneNumber.phone_number_id).where(PhoneNumber.tenant_id == tenant_id))
        db.session.remove()
    refusal = refused(connect(app, tenant_id, sandbox_id, "EAAGtoken"))
    assert refusal.field == "phone_number_id" and "sandbox" in refusal.message
    assert graph.calls == []


# -- testing a connection --------------------------------------------------------------

def check(app, tenant_id, row_id):
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        try:
            outcome = connections.check_number(tenant, tenant.users[0], row_id, lookup=app.extensions["number_info"])
            return outcome.info, outcome.error
        finally:
            db.session.remove()


def test_testing_a_connection_reads_and_stores_quality_and_tier(app, graph, starter):
    meta = graph.add_number(quality_rating="GREEN", messaging_limit_tier="TIER_1K")
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    first_check = number_row(app, row_id)["last_checked_at"]
    meta.quality_rating, meta.messaging_limit_tier = "YELLOW", "TIER_10K"
    meta.display_phone_number, meta.verified_name = "+1 415-555-0199", "Acme Shoes Inc"

    info, error = check(app, starter, row_id)

    assert error is None and (info.quality_rating, info.messaging_limit_tier) == ("YELLOW", "TIER_10K")
    row = number_row(app, row_id)
    assert (row["quality_rating"], row["messaging_limit_tier"]) == ("YELLOW", "TIER_10K")
    assert (row["display_number"], row["verified_name"]) == ("+1 415-555-0199", "Acme Shoes Inc")
    assert row["last_checked_at"] >= first_check and row["last_check_error"] is None
    call = graph.requests("GET", f"/{meta.phone_number_id}")[-1]
    assert call.headers["Authorization"] == f"Bearer {meta.token}"
    assert audit_actions(app, starter) == ["number.connected", "number.tested"]


def test_a_failed_test_keeps_the_last_good_figures_and_records_why(app, graph, starter):
    meta = graph.add_number(quality_rating="GREEN", messaging_limit_tier="TIER_1K")
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    meta.token = "EAAGrevokedatmeta"  # the tenant revoked the token in Business Manager

    info, error = check(app, starter, row_id)

    assert info is None and "Error validating access token" in error
    row = number_row(app, row_id)
    assert (row["quality_rating"], row["messaging_limit_tier"]) == ("GREEN", "TIER_1K")
    assert "Error validating access token" in row["last_check_error"]
    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "number.tested")).all()
        assert event.details["ok"] is False and "failed" in event.summary
        db.session.remove()


def test_a_test_times_out_as_an_error_not_a_crash(app, graph, starter, quick_graph):
    meta = graph.add_number()
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    graph.delay("GET", f"/{meta.phone_number_id}", seconds=1.0)
    info, error = check(app, starter, row_id)
    assert info is None and "did not answer" in error


def test_a_token_no_key_decrypts_is_reported_by_the_test(app, graph, starter, keys):
    meta = graph.add_number()
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    keys(Fernet.generate_key().decode())  # the key the token was stored with is gone
    info, error = check(app, starter, row_id)
    assert info is None and "can no longer be decrypted" in error
    assert graph.requests("GET", f"/{meta.phone_number_id}")[1:] == []


# -- disconnecting -------------------------------------------------------------------

def disconnect(app, tenant_id, row_id):
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        try:
            connections.disconnect_number(tenant, tenant.users[0], row_id)
        finally:
            db.session.remove()


def send_from(client, key, phone_number_id, path="cloud"):
    body = {"messaging_product": "whatsapp", "to": "15551234567", "type": "text", "text": {"body": "hi"}}
    headers = {"Authorization": f"Bearer {key}"}
    if path == "cloud":
        return client.post(f"/v23.0/{phone_number_id}/messages", json=body, headers=headers)
    return client.post("/api/v1/messages", json={**body, "phone_number_id": phone_number_id}, headers=headers)


def test_a_disconnected_number_stops_sending_at_once_and_keeps_its_messages(app, client, graph):
    acme = sender(client, "starter")
    meta = graph.add_number()
    row_id = connect(app, acme.tenant_id, meta.phone_number_id, meta.token)
    message_id = add_message(app, acme.tenant_id, row_id)
    with app.app_context():
        # A send a moment ago left the number's snapshot in this process's cache.
        assert sending_number(tenant_snapshot(acme.tenant_id), meta.phone_number_id).id == row_id
        db.session.remove()

    disconnect(app, acme.tenant_id, row_id)

    for path in ("cloud", "v1"):
        response = send_from(client, acme.key, meta.phone_number_id, path)
        assert response.status_code == 404, response.get_json()
    assert send_from(client, acme.key, meta.phone_number_id).get_json()["error"]["code"] == 100
    assert send_from(client, acme.key, meta.phone_number_id, "v1").get_json()["error"]["code"] == "not_found"
    row = number_row(app, row_id)
    assert row["disconnected_at"] is not None
    assert row["access_token_encrypted"] is None and row["token_last4"] is None
    message = acme.get(f"/api/v1/messages/{message_id}")
    assert message.status_code == 200
    assert message.get_json()["phone_number_id"] == meta.phone_number_id
    with app.app_context():
        assert [m.id for m in messaging.list_messages(tenant_snapshot(acme.tenant_id), limit=10)] == [message_id]
        db.session.remove()
    assert audit_actions(app, acme.tenant_id) == ["number.connected", "number.disconnected"]


def test_a_number_disconnected_by_another_process_stops_within_the_bound(app, client, graph, short_bound):
    acme = sender(client, "starter")
    meta = graph.add_number()
    row_id = connect(app, acme.tenant_id, meta.phone_number_id, meta.token)
    with app.app_context():
        tenant = tenant_snapshot(acme.tenant_id)
        assert sending_number(tenant, meta.phone_number_id).id == row_id
        # Another web process disconnects it: committed, unseen by this process's cache.
        db.session.execute(text("UPDATE phone_numbers SET disconnected_at = CURRENT_TIMESTAMP, "
                                "access_token_encrypted = NULL WHERE id = :id"), {"id": row_id})
        db.session.commit()
        assert sending_number(tenant, meta.phone_number_id).id == row_id  # still cached: the bound is real
        time.sleep(short_bound + 0.1)
        with pytest.raises(NotFound):
            sending_number(tenant, meta.phone_number_id)
        db.session.remove()
    assert send_from(client, acme.key, meta.phone_number_id).status_code == 404


def test_a_disconnected_number_leaves_the_api_list_and_frees_its_room(app, client, graph):
    acme = sender(client, "starter")
    first, second = graph.add_number(), graph.add_number()
    row_id = connect(app, acme.tenant_id, first.phone_number_id, first.token)
    disconnect(app, acme.tenant_id, row_id)

    listed = [n["phone_number_id"] for n in acme.get("/api/v1/numbers").get_json()["data"]]
    assert listed == [acme.number]
    # /api/v1/messages picks the one number left when none is named.
    assert acme.client.post("/api/v1/messages", headers=acme.headers, json={
        "messaging_product": "whatsapp", "to": "15551234567", "type": "text",
        "text": {"body": "hi"}}).status_code == 201
    assert isinstance(connect(app, acme.tenant_id, second.phone_number_id, second.token), int)


def test_a_disconnected_number_is_reconnected_by_its_tenant_with_its_history(app, client, graph):
    acme = sender(client, "pro")
    meta = graph.add_number(quality_rating="GREEN")
    row_id = connect(app, acme.tenant_id, meta.phone_number_id, meta.token)
    message_id = add_message(app, acme.tenant_id, row_id)
    disconnect(app, acme.tenant_id, row_id)
    meta.token, meta.quality_rating = "EAAGafreshtoken4321", "YELLOW"

    assert connect(app, acme.tenant_id, meta.phone_number_id, meta.token, waba_id="555") == row_id

    row = number_row(app, row_id)
    assert row["disconnected_at"] is None and row["waba_id"] == "555" and row["quality_rating"] == "YELLOW"
    with app.app_context():
        assert decrypt_token(row["access_token_encrypted"]) == "EAAGafreshtoken4321"
        assert sending_number(tenant_snapshot(acme.tenant_id), meta.phone_number_id).id == row_id
        assert db.session.get(Message, message_id).phone_number_id == row_id
        db.session.remove()
    assert audit_actions(app, acme.tenant_id) == ["number.connected", "number.disconnected", "number.reconnected"]


def test_disconnecting_twice_or_the_sandbox_number_is_not_found(app, graph, starter):
    meta = graph.add_number()
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    disconnect(app, starter, row_id)
    with pytest.raises(NotFound):
        disconnect(app, starter, row_id)
    with app.app_context():
        sandbox_row = db.session.scalar(select(PhoneNumber.id).where(
            PhoneNumber.tenant_id == starter, PhoneNumber.mode == "sandbox"))
        db.session.remove()
    with pytest.raises(NotFound):
        disconnect(app, starter, sandbox_row)
    with pytest.raises(NotFound):
        check(app, starter, sandbox_row)


# -- tenant isolation ------------------------------------------------------------------

def test_another_tenant_can_neither_test_nor_disconnect_the_number(app, graph, starter):
    with app.app_context():
        intruder = tenant_id_on("pro")
        db.session.remove()
    meta = graph.add_number()
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    graph.calls.clear()

    with pytest.raises(NotFound):
        check(app, intruder, row_id)
    with pytest.raises(NotFound):
        disconnect(app, intruder, row_id)

    assert graph.calls == []
    assert number_row(app, row_id)["disconnected_at"] is None
    assert audit_actions(app, intruder) == []


def test_another_tenant_cannot_send_from_the_number(app, client, graph, starter):
    intruder = sender(client, "pro")
    meta = graph.add_number()
    connect(app, starter, meta.phone_number_id, meta.token)
    response = send_from(client, intruder.key, meta.phone_number_id)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == 100


# -- the API -------------------------------------------------------------------------

def test_api_numbers_shows_mode_display_name_quality_and_tier_never_the_token(app, client, graph):
    acme = sender(client, "starter")
    meta = graph.add_number(display_phone_number="+1 415-555-0123", verified_name="Acme Shoes",
                            quality_rating="GREEN", messaging_limit_tier="TIER_1K")
    row_id = connect(app, acme.tenant_id, meta.phone_number_id, meta.token, waba_id=meta.waba_id)
    ciphertext = number_row(app, row_id)["access_token_encrypted"]

    response = acme.get("/api/v1/numbers")

    assert response.status_code == 200
    sandbox, live = response.get_json()["data"]
    assert sandbox["mode"] == "sandbox" and sandbox["quality_rating"] is None
    assert {k: live[k] for k in ("phone_number_id", "mode", "display_phone_number", "verified_name",
                                 "quality_rating", "messaging_limit_tier", "waba_id")} == {
        "phone_number_id": meta.phone_number_id, "mode": "live", "display_phone_number": "+1 415-555-0123",
        "verified_name": "Acme Shoes", "quality_rating": "GREEN", "messaging_limit_tier": "TIER_1K",
        "waba_id": meta.waba_id}
    assert live["last_checked_at"].endswith("Z")
    body = response.get_data(as_text=True)
    assert meta.token not in body and meta.token[-4:] not in body and ciphertext not in body
    assert "token" not in body


# -- the audit log ---------------------------------------------------------------------

def test_every_change_is_audited_with_its_actor_and_never_the_token(app, graph, starter):
    meta = graph.add_number()
    row_id = connect(app, starter, meta.phone_number_id, meta.token)
    check(app, starter, row_id)
    disconnect(app, starter, row_id)
    with app.app_context():
        owner_email = db.session.get(Tenant, starter).users[0].email
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == starter)
                                         .order_by(AuditEvent.id)))
        assert [e.action for e in events] == ["number.connected", "number.tested", "number.disconnected"]
        for event in events:
            assert event.actor == owner_email
            assert event.details["phone_number_id"] == meta.phone_number_id
            assert meta.token not in event.summary and meta.token not in str(event.details)
        db.session.remove()


# -- encryption keys ---------------------------------------------------------------------

def test_with_two_keys_old_tokens_decrypt_and_rotation_moves_them_to_the_first(app, graph, runner, keys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old)
    with app.app_context():
        tenants = [tenant_id_on("starter") for _ in range(3)]
        db.session.remove()
    metas = [graph.add_number() for _ in tenants]
    rows = [connect(app, t, m.phone_number_id, m.token) for t, m in zip(tenants, metas)]
    disconnect(app, tenants[2], rows[2])  # no token left to rotate

    keys(new, old)
    with app.app_context():
        assert decrypt_token(number_row(app, rows[0])["access_token_encrypted"]) == metas[0].token
    result = runner.invoke(args=["tokens", "rotate"])

    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 access tokens with the first key." in result.output
    keys(new)  # the old key can now be dropped
    with app.app_context():
        for row_id, meta in zip(rows[:2], metas[:2]):
            ciphertext = number_row(app, row_id)["access_token_encrypted"]
            assert decrypt_token(ciphertext) == meta.token
            assert Fernet(new.encode()).decrypt(ciphertext.encode()).decode() == meta.token
    assert audit_actions(app, tenants[0]) == ["number.connected", "number.token_rotated"]
    assert audit_actions(app, tenants[2]) == ["number.connected", "number.disconnected"]
    # And the numbers still test fine with the new key alone.
    assert check(app, tenants[0], rows[0])[1] is None


def test_rotation_reports_a_token_no_key_decrypts_and_rotates_the_others(app, graph, runner, keys):
    lost, old, new = (Fernet.generate_key().decode() for _ in range(3))
    with app.app_context():
        tenants = [tenant_id_on("starter") for _ in range(2)]
        db.session.remove()
    metas = [graph.add_number() for _ in tenants]
    keys(lost)
    lost_row = connect(app, tenants[0], metas[0].phone_number_id, metas[0].token)
    keys(old)
    kept_row = connect(app, tenants[1], metas[1].phone_number_id, metas[1].token)
    lost_ciphertext = number_row(app, lost_row)["access_token_encrypted"]

    keys(new, old)
    result = runner.invoke(args=["tokens", "rotate"])

    assert result.exit_code == 1
    assert "Re-encrypted 1 access token with the first key." in result.output
    assert f"Cannot decrypt the token of phone_number_id {metas[0].phone_number_id} (tenant {tenants[0]})" \
        in result.output
    assert number_row(app, lost_row)["access_token_encrypted"] == lost_ciphertext
    with app.app_context():
        with pytest.raises(TokenUnreadable):
            decrypt_token(lost_ciphertext)
        ciphertext = number_row(app, kept_row)["access_token_encrypted"]
        assert Fernet(new.encode()).decrypt(ciphertext.encode()).decode() == metas[1].token


def test_rotation_with_nothing_stored_says_so(app, runner):
    result = runner.invoke(args=["tokens", "rotate"])
    assert result.exit_code == 0 and "Re-encrypted 0 access tokens" in result.output


def test_new_tokens_are_encrypted_with_the_first_key(app, keys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(new, old)
    with app.app_context():
        ciphertext = encrypt_token("EAAGsecret")
    assert Fernet(new.encode()).decrypt(ciphertext.encode()) == b"EAAGsecret"


@pytest.fixture
def env(monkeypatch):
    for name in ("APP_ENV", "TOKEN_ENCRYPTION_KEY", "WHATSAPP_TIMEOUT_SECONDS", "WHATSAPP_CONNECT_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# A fixed key: parametrized ids must be the same in every test process.
GOOD = base64.urlsafe_b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize("value, says", [
    ("not-a-fernet-key", "TOKEN_ENCRYPTION_KEY: its value is not a Fernet key"),
    (GOOD[:-4], "TOKEN_ENCRYPTION_KEY: its value is not a Fernet key"),
    (f"{GOOD},,{GOOD}", "TOKEN_ENCRYPTION_KEY: entry 2 of 3 is empty"),
    (f"{GOOD},{GOOD[:20]}é", "TOKEN_ENCRYPTION_KEY: entry 2 of 2 is not a Fernet key"),
    (f"{GOOD},", "TOKEN_ENCRYPTION_KEY: entry 2 of 2 is empty"),
])
def test_a_malformed_key_is_a_config_error_that_names_it_without_showing_it(env, tmp_path, value, says):
    env.setenv("TOKEN_ENCRYPTION_KEY", value)
    with pytest.raises(ConfigError) as error:
        load(str(tmp_path))
    assert str(error.value).startswith(says)
    assert GOOD not in str(error.value) and "not-a-fernet-key" not in str(error.value)


def test_several_keys_load_in_order_with_spaces_around_commas(env, tmp_path):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env.setenv("TOKEN_ENCRYPTION_KEY", f" {first} , {second} ")
    assert token_keys(load(str(tmp_path))["TOKEN_ENCRYPTION_KEY"]) == [first, second]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_graph_timeouts_must_be_positive_seconds(env, tmp_path, value):
    env.setenv("WHATSAPP_TIMEOUT_SECONDS", value)
    with pytest.raises(ConfigError, match="WHATSAPP_TIMEOUT_SECONDS"):
        load(str(tmp_path))


def test_graph_timeouts_default_to_3_05_seconds_to_connect_and_20_to_read(env, tmp_path):
    settings = load(str(tmp_path))
    assert (settings["WHATSAPP_CONNECT_TIMEOUT_SECONDS"], settings["WHATSAPP_TIMEOUT_SECONDS"]) == (3.05, 20.0)


def test_assign_plan_changes_the_allowance_at_once(app, graph, starter):
    """A plan change committed here applies to the next connect (the plan snapshot cache is emptied)."""
    metas = [graph.add_number() for _ in range(2)]
    connect(app, starter, metas[0].phone_number_id, metas[0].token)
    assert "allows 1 live number" in refused(connect(app, starter, metas[1].phone_number_id, metas[1].token)).message
    with app.app_context():
        assign_plan(db.session.get(Tenant, starter), "pro", actor="cli")
        db.session.remove()
    assert isinstance(connect(app, starter, metas[1].phone_number_id, metas[1].token), int)
