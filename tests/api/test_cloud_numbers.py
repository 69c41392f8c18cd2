"""A number's info and business profile, mark-read with the typing indicator, and inbound media, on the
Cloud-API-compatible paths against the loopback Graph API."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Media, Message, WhatsAppNotification
from tests import whatsapp_payloads as wa
from tests.factories import sender, settle
from tests.messaging.live import inbound, live_number

SECRET = "test-app-secret"


@pytest.fixture
def acme(app, client, graph):
    tenant = sender(client, "starter")
    phone_number_id, pk, waba_id, token = live_number(app, graph, tenant.tenant_id)
    return tenant, phone_number_id, pk, token


def error_of(response, status):
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


# -- number info -------------------------------------------------------------------------------------

def test_a_live_numbers_info_is_asked_of_graph_with_its_token(graph, acme):
    tenant, phone_number_id, _, token = acme
    response = tenant.get(f"/v23.0/{phone_number_id}?fields=display_phone_number,quality_rating,messaging_limit_tier")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": phone_number_id, "display_phone_number": "+1 555-010-0000",
                                   "quality_rating": "GREEN", "messaging_limit_tier": "TIER_1K"}
    [call] = graph.requests("GET", f"/{phone_number_id}")
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert call.query == {"fields": ["display_phone_number,quality_rating,messaging_limit_tier"]}


def test_a_sandbox_numbers_info_has_the_same_shape_from_our_row(graph, acme):
    tenant = acme[0]
    everything = tenant.get(f"/v23.0/{tenant.number}").get_json()
    assert {"id", "display_phone_number", "verified_name", "quality_rating", "messaging_limit_tier",
            "code_verification_status", "platform_type", "throughput"} <= set(everything)
    assert everything["id"] == tenant.number and everything["messaging_limit_tier"] == "TIER_250"
    some = tenant.get(f"/v23.0/{tenant.number}?fields=verified_name,throughput{{level}}").get_json()
    assert set(some) == {"id", "verified_name", "throughput"}
    assert graph.calls == []


@pytest.mark.parametrize("fields", ["a b", "x" * 501, "name\x00", "<script>"])
def test_bad_fields_are_a_400(graph, acme, fields):
    tenant, phone_number_id, _, _ = acme
    error = error_of(tenant.get(f"/v23.0/{phone_number_id}", query_string={"fields": fields}), 400)
    assert error["code"] == 100 and "fields" in error["details"]
    assert graph.calls == []


def test_graphs_refusal_of_number_info_is_relayed(graph, acme):
    tenant, phone_number_id, _, _ = acme
    graph.fail("GET", f"/{phone_number_id}", code=190)
    error = error_of(tenant.get(f"/v23.0/{phone_number_id}"), 401)
    assert error["code"] == 190 and error["fbtrace_id"].startswith("A")


def test_another_tenants_number_info_and_profile_are_unknown_objects(app, client, graph, acme):
    _, phone_number_id, _, _ = acme
    intruder = sender(client, "starter")
    calls = len(graph.calls)
    for path in (f"/v23.0/{phone_number_id}", f"/v23.0/{phone_number_id}/whatsapp_business_profile"):
        theirs, unknown = intruder.get(path), intruder.get(path.replace(phone_number_id, "199999999999999"))
        assert theirs.status_code == unknown.status_code == 404
        assert error_of(theirs, 404)["error_subcode"] == 33
        assert error_of(theirs, 404)["code"] == error_of(unknown, 404)["code"] == 100
    posted = intruder.client.post(f"/v23.0/{phone_number_id}/whatsapp_business_profile", headers=intruder.headers,
                                  json={"messaging_product": "whatsapp", "about": "mine now"})
    assert error_of(posted, 404)["error_subcode"] == 33
    assert len(graph.calls) == calls


# -- business profile --------------------------------------------------------------------------------

def test_a_live_numbers_profile_is_read_and_changed_at_graph(graph, acme):
    tenant, phone_number_id, _, token = acme
    path = f"/v23.0/{phone_number_id}/whatsapp_business_profile"
    response = tenant.get(path + "?fields=about,email,websites")
    assert response.status_code == 200
    assert response.get_json()["data"][0]["about"] == "We answer within an hour."
    assert graph.requests("GET", "/whatsapp_business_profile")[0].query == {"fields": ["about,email,websites"]}

    changed = tenant.client.post(path, headers=tenant.headers, json={
        "messaging_product": "whatsapp", "about": "Open 9 to 5", "websites": ["https://acme.example.com/shop"],
        "vertical": "RETAIL", "ignored": "x"})
    assert changed.status_code == 200 and changed.get_json() == {"success": True}
    [call] = graph.requests("POST", "/whatsapp_business_profile")
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert call.body == {"messaging_product": "whatsapp", "about": "Open 9 to 5",
                         "websites": ["https://acme.example.com/shop"], "vertical": "RETAIL"}
    assert graph.numbers[phone_number_id].profile["about"] == "Open 9 to 5"


@pytest.mark.parametrize("body, field", [
    ({"about": "x" * 140}, "about"),
    ({"about": "a\x00b"}, None),
    ({"email": "not an email"}, "email"),
    ({"vertical": "SPACESHIPS"}, "vertical"),
    ({"websites": ["https://a.example", "https://b.example", "https://c.example"]}, "websites"),
    ({"websites": ["javascript:alert(1)"]}, "websites"),
    ({"messaging_product": "sms"}, "messaging_product"),
])
def test_a_bad_profile_change_is_a_400_and_nothing_goes_upstream(graph, acme, body, field):
    tenant, phone_number_id, _, _ = acme
    response = tenant.client.post(f"/v23.0/{phone_number_id}/whatsapp_business_profile", headers=tenant.headers,
                                  json={"messaging_product": "whatsapp", **body})
    error = error_of(response, 400)
    assert error["code"] == 100
    if field:
        assert field in error["details"]
    assert graph.requests("POST") == []


def test_a_sandbox_numbers_profile_reads_empty_and_cannot_be_changed(graph, acme):
    tenant = acme[0]
    path = f"/v23.0/{tenant.number}/whatsapp_business_profile"
    profile = tenant.get(path).get_json()["data"][0]
    assert profile["messaging_product"] == "whatsapp" and profile["about"] == "" and profile["websites"] == []
    assert set(tenant.get(path + "?fields=about").get_json()["data"][0]) == {"about", "messaging_product"}
    error = error_of(tenant.client.post(path, headers=tenant.headers,
                                        json={"messaging_product": "whatsapp", "about": "Hi"}), 400)
    assert error["code"] == 4001 and error["reason"] == "live_number_required"
    assert graph.calls == []


def test_a_profile_change_is_never_retried(graph, acme):
    tenant, phone_number_id, _, _ = acme
    graph.fail("POST", "/whatsapp_business_profile", status=503, times=3)
    response = tenant.client.post(f"/v23.0/{phone_number_id}/whatsapp_business_profile", headers=tenant.headers,
                                  json={"messaging_product": "whatsapp", "about": "Hi"})
    assert response.status_code == 502
    assert len(graph.requests("POST", "/whatsapp_business_profile")) == 1


# -- mark read and the typing indicator -------------------------------------------------------------

def read_at(app, tenant_id):
    with app.app_context():
        value = db.session.scalar(select(Message.read_at).where(Message.tenant_id == tenant_id,
                                                                Message.direction == "in"))
        db.session.remove()
    return value


def mark_read(tenant, phone_number_id, message_id, **extra):
    return tenant.client.post(f"/v23.0/{phone_number_id}/messages", headers=tenant.headers, json={
        "messaging_product": "whatsapp", "status": "read", "message_id": message_id, **extra})


def received(app, tenant_id, pk) -> str:
    inbound(app, tenant_id, pk, "15551230001")
    with app.app_context():
        wamid = db.session.scalar(select(Message.wa_message_id).where(Message.tenant_id == tenant_id))
        db.session.remove()
    return wamid


def test_mark_read_with_the_typing_indicator_goes_to_graph_then_is_recorded(app, graph, acme):
    tenant, phone_number_id, pk, token = acme
    wamid = received(app, tenant.tenant_id, pk)
    response = mark_read(tenant, phone_number_id, wamid, typing_indicator={"type": "text"})
    assert response.status_code == 200 and response.get_json() == {"success": True}
    [call] = graph.requests("POST", "/messages")
    assert call.path == f"/v23.0/{phone_number_id}/messages"
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert call.body == {"messaging_product": "whatsapp", "status": "read", "message_id": wamid,
                         "typing_indicator": {"type": "text"}}
    assert read_at(app, tenant.tenant_id) is not None


def test_graphs_refusal_of_mark_read_is_relayed_and_nothing_is_recorded(app, graph, acme):
    tenant, phone_number_id, pk, _ = acme
    wamid = received(app, tenant.tenant_id, pk)
    graph.fail("POST", "/messages", code=100, subcode=2494010)
    error = error_of(mark_read(tenant, phone_number_id, wamid), 400)
    assert error["code"] == 100 and error["error_subcode"] == 2494010 and error["fbtrace_id"].startswith("A")
    assert read_at(app, tenant.tenant_id) is None
    assert len(graph.requests("POST", "/messages")) == 1


@pytest.mark.parametrize("indicator", [{"type": "audio"}, {}, "text", {"type": "t" * 5000}])
def test_a_bad_typing_indicator_is_a_400(app, graph, acme, indicator):
    tenant, phone_number_id, pk, _ = acme
    wamid = received(app, tenant.tenant_id, pk)
    error = error_of(mark_read(tenant, phone_number_id, wamid, typing_indicator=indicator), 400)
    assert "typing_indicator" in error["details"]
    assert graph.calls == []


def test_a_sandbox_mark_read_stays_local(app, graph, client):
    tenant = sender(client, "starter")
    error = error_of(mark_read(tenant, tenant.number, "wamid.unknown", typing_indicator={"type": "text"}), 400)
    assert error["details"] == {"message_id": ["Unknown message id."]}
    assert graph.calls == []


# -- inbound media -----------------------------------------------------------------------------------

def test_inbound_media_is_recorded_once_for_the_numbers_tenant_and_can_be_fetched(app, client, graph, acme):
    tenant, phone_number_id, pk, _ = acme
    app.config["WHATSAPP_APP_SECRET"] = SECRET
    try:
        number = type("N", (), {"phone_number_id": phone_number_id, "display_number": "+1 555-020-0000"})
        photo = wa.inbound("image", {"mime_type": "image/jpeg", "sha256": "a" * 44, "id": "1003383421387256"})
        note = wa.inbound("text", {"body": "hi"})
        payload = wa.notification("102290129340398", ("messages", wa.messages_value(
            number, contacts=[wa.contact()], messages=[photo, note])))
        for _ in range(2):  # WhatsApp repeats a notification it thinks was not received
            body, headers = wa.signed(payload, SECRET)
            assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
            settle(app)
    finally:
        app.config["WHATSAPP_APP_SECRET"] = None
    with app.app_context():
        rows = db.session.execute(select(Media.media_id, Media.tenant_id, Media.phone_number_id, Media.origin,
                                         Media.mime_type)).all()
        db.session.remove()
    assert [tuple(r) for r in rows] == [("1003383421387256", tenant.tenant_id, pk, "inbound", "image/jpeg")]
    with app.app_context():
        applied = db.session.execute(select(WhatsAppNotification.processed_at, WhatsAppNotification.error)).all()
        db.session.remove()
    assert len(applied) == 2 and all(at is not None and error is None for at, error in applied)
    graph.media["1003383421387256"] = {"data": b"jpeg", "mime_type": "image/jpeg", "sha256": "a" * 64}
    assert tenant.get("/v23.0/1003383421387256").get_json()["mime_type"] == "image/jpeg"
    assert tenant.get("/v23.0/media/1003383421387256/content").data == b"jpeg"
