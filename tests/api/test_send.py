"""The Cloud-API-compatible send endpoint: success shape, validation, errors."""
from __future__ import annotations

import pytest

from tests.conftest import AuthActions
from tests.factories import sender, settle


@pytest.fixture
def acme(client):
    return sender(client)


def test_send_answers_like_the_cloud_api(acme):
    response = acme.send(to="+1 (555) 123-4567", body="Hello")
    assert response.status_code == 200
    body = response.get_json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 (555) 123-4567", "wa_id": "15551234567"}]
    assert body["messages"][0]["id"].startswith("wamid.")
    assert response.headers["X-Request-Id"]


@pytest.mark.parametrize("version", ["v23.0", "v19.0", "v21"])
def test_any_graph_version_in_the_path_works(acme, version):
    assert acme.send(version=version).status_code == 200


def test_sandbox_message_walks_to_read_after_the_response(app, acme):
    acme.send(body="status please")
    settle(app)
    message = acme.get("/api/v1/messages").get_json()["data"][0]
    assert message["status"] == "read"
    assert message["sent_at"] and message["delivered_at"] and message["read_at"]
    assert message["summary"] == "status please"


def graph_error(response):
    error = response.get_json()["error"]
    assert set(error) >= {"message", "type", "code", "error_data", "fbtrace_id", "reason"}
    assert isinstance(error["code"], int)
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["fbtrace_id"] == response.headers["X-Request-Id"]
    return error


@pytest.mark.parametrize("payload, field", [
    ({"to": "15551234567", "type": "text", "text": {"body": "x"}}, "messaging_product"),
    ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, "to"),
    ({"messaging_product": "whatsapp", "to": "15551234567", "type": "text"}, "text"),
    ({"messaging_product": "whatsapp", "to": "15551234567", "type": "text", "text": {"body": 5}}, "text"),
    ({"messaging_product": "whatsapp", "to": "15551234567", "type": "text", "text": {"body": ""}}, "text"),
    ({"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "x" * 4097}}, "text"),
    ({"messaging_product": "whatsapp", "to": "not a number", "text": {"body": "x"}}, "to"),
    ({"messaging_product": "whatsapp", "to": ["15551234567"], "text": {"body": "x"}}, "to"),
    ({"messaging_product": "sms", "to": "15551234567", "text": {"body": "x"}}, "messaging_product"),
    ({"messaging_product": "whatsapp", "to": "15551234567", "type": "fax", "fax": {}}, "type"),
    ({"messaging_product": "whatsapp", "to": "15551234567", "text": "hello"}, "text"),
])
def test_bad_fields_get_400_with_the_field_named(acme, payload, field):
    response = acme.send(payload=payload)
    assert response.status_code == 400
    error = graph_error(response)
    assert error["code"] == 100
    assert error["reason"] == "invalid_request"
    assert field in error["details"]


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe",
                                 b"[" * 100000 + b"]" * 100000])
def test_unparseable_bodies_get_400(acme, raw):
    response = acme.client.post(f"/v23.0/{acme.number}/messages", data=raw,
                                headers={**acme.headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert graph_error(response)["reason"] == "invalid_request"


def test_oversize_body_gets_413(acme, app):
    big = b'{"messaging_product": "whatsapp", "to": "1555", "text": {"body": "' + b"x" * (
        app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}}'
    response = acme.client.post(f"/v23.0/{acme.number}/messages", data=big,
                                headers={**acme.headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert graph_error(response)["reason"] == "payload_too_large"


def test_unknown_phone_number_id_is_404(acme):
    response = acme.send(number="123456789012345")
    assert response.status_code == 404
    error = graph_error(response)
    assert error["reason"] == "not_found"
    assert error["code"] == 100 and error["error_subcode"] == 33


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer nope", "Basic abc",
                                    "Bearer wsk_00000000_" + "a" * 43, "Bearer " + "x" * 5000])
def test_bad_credentials_get_401(client, acme, header):
    headers = {} if header is None else {"Authorization": header}
    response = client.post(f"/v23.0/{acme.number}/messages", headers=headers,
                           json={"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "x"}})
    assert response.status_code == 401
    error = graph_error(response)
    assert error["code"] == 190 and error["reason"] == "unauthenticated"
    assert "Bearer" in response.headers["WWW-Authenticate"]


def test_media_is_refused_on_the_free_plan_with_an_upgrade_url(acme):
    response = acme.send(payload={"messaging_product": "whatsapp", "to": "15551234567", "type": "image",
                                  "image": {"link": "https://cdn.example.com/a.png"}})
    assert response.status_code == 403
    error = graph_error(response)
    assert error["reason"] == "feature_not_in_plan"
    assert error["upgrade_url"].endswith("/billing")


@pytest.mark.parametrize("payload", [
    {"type": "image", "image": {"link": "https://cdn.example.com/a.png", "caption": "look"}},
    {"type": "document", "document": {"id": "1234567890", "filename": "invoice.pdf"}},
    {"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}},
])
def test_paid_plan_sends_media_and_templates_in_sandbox(client, payload):
    starter = sender(client, "starter")
    response = starter.send(payload={"messaging_product": "whatsapp", "to": "15551234567", **payload})
    assert response.status_code == 200, response.get_json()
    if payload["type"] == "template":
        assert response.get_json()["messages"][0]["message_status"] == "accepted"


@pytest.mark.parametrize("payload, field", [
    ({"type": "image", "image": {}}, "image"),
    ({"type": "image", "image": {"id": "1", "link": "https://a.example.com/x.png"}}, "image"),
    ({"type": "image", "image": {"link": "javascript:alert(1)"}}, "image"),
    ({"type": "template", "template": {"name": "x"}}, "template"),
    ({"type": "interactive", "interactive": {"type": "button"}}, "interactive"),
    ({"type": "interactive", "interactive": {"type": "hologram", "body": {"text": "Hi"}, "action": {}}}, "interactive"),
    ({"type": "location", "location": {"latitude": 120, "longitude": 0}}, "location"),
    ({"type": "audio", "audio": {"id": "1", "caption": "no"}}, "audio"),
])
def test_other_types_are_validated(client, payload, field):
    pro = sender(client, "pro")
    response = pro.send(payload={"messaging_product": "whatsapp", "to": "15551234567", **payload})
    assert response.status_code == 400
    assert field in graph_error(response)["details"]


def test_interactive_needs_the_pro_plan(client):
    payload = {"messaging_product": "whatsapp", "to": "15551234567", "type": "interactive",
               "interactive": {"type": "button", "body": {"text": "Pick"},
                               "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}
    assert sender(client, "starter").send(payload=payload).status_code == 403
    assert sender(client, "pro").send(payload=payload).status_code == 200


def test_sandbox_failure_is_a_502_with_whatsapps_code_and_not_billed(acme):
    response = acme.send(to="15550000131")
    assert response.status_code == 502
    error = graph_error(response)
    assert error["code"] == 131026 and error["reason"] == "upstream_error"
    usage = acme.get("/api/v1/usage").get_json()
    assert usage["used"] == 0 and usage["messages"] == 0
    message = acme.get("/api/v1/messages").get_json()["data"][0]
    assert message["status"] == "failed" and message["error"]["code"] == 131026


def test_unknown_routes_and_methods_answer_json(acme):
    assert acme.client.get(f"/v23.0/{acme.number}/messages").status_code == 405
    response = acme.client.get("/api/v1/nothing-here", headers=acme.headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_mark_as_read_of_an_unknown_message_is_400(acme):
    # Only messages this number received can be marked; an unknown id is refused clearly.
    response = acme.send(payload={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.nope"})
    assert response.status_code == 400
    assert "message_id" in graph_error(response)["details"]


def test_a_cookieless_send_sets_no_cookie_and_the_portal_session_still_works(app, client, acme, auth):
    """An API call opens no session (saas.portal.sessions.CookieSessions); a portal login still sets its
    cookie, which logs the following pages in, API calls from that browser between them included."""
    sent = acme.send(body="no cookie")
    assert sent.status_code == 200
    assert "Set-Cookie" not in sent.headers
    browser = app.test_client()
    assert AuthActions(browser).signup(email="cookie@acme.example.com").status_code == 303
    assert browser.get_cookie("session") is not None
    assert browser.get("/dashboard").status_code == 200
    answered = browser.post(f"/v23.0/{acme.number}/messages", headers=acme.headers,
                            json={"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                                  "text": {"body": "from a browser"}})
    assert answered.status_code == 200
    assert browser.get("/dashboard").status_code == 200
    assert app.test_client().get("/dashboard").status_code == 302
