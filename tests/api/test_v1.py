"""/api/v1: send, list, fetch, numbers, usage."""
from __future__ import annotations

import pytest

from tests.factories import sender


@pytest.fixture
def acme(client):
    return sender(client)


def test_v1_send_creates_a_message_resource(acme):
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        "messaging_product": "whatsapp", "to": "+15551230001", "type": "text", "text": {"body": "hi"}})
    assert response.status_code == 201
    body = response.get_json()
    assert body["object"] == "message" and body["wa_id"] == "15551230001"
    assert body["phone_number_id"] == acme.number
    assert body["wa_message_id"].startswith("wamid.")
    assert response.headers["Location"].endswith(f"/api/v1/messages/{body['id']}")
    assert acme.get(response.headers["Location"]).get_json()["id"] == body["id"]


def test_v1_replay_answers_200_with_the_same_message(acme):
    payload = {"messaging_product": "whatsapp", "to": "15551230001", "text": {"body": "once"}}
    headers = {**acme.headers, "Idempotency-Key": "abc-1"}
    first = acme.client.post("/api/v1/messages", headers=headers, json=payload)
    again = acme.client.post("/api/v1/messages", headers=headers, json=payload)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    other = acme.client.post("/api/v1/messages", headers=headers, json={**payload, "to": "15551230002"})
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_conflict"


def test_v1_validation_errors_use_the_envelope(acme):
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={"to": 1})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert {"messaging_product", "to"} <= set(error["details"])
    assert response.headers["X-Request-Id"]


def test_messages_list_pages_newest_first(acme):
    for n in range(5):
        acme.send(to=f"1555123000{n}", body=f"m{n}")
    page = acme.get("/api/v1/messages?limit=2").get_json()
    assert [m["summary"] for m in page["data"]] == ["m4", "m3"]
    assert page["has_more"] is True
    page2 = acme.get(page["next"]).get_json()
    assert [m["summary"] for m in page2["data"]] == ["m2", "m1"]
    last = acme.get(page2["next"]).get_json()
    assert [m["summary"] for m in last["data"]] == ["m0"] and last["has_more"] is False


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "before=-3", "before=x",
                                   "before=99999999999999999999"])
def test_bad_pagination_is_400(acme, query):
    response = acme.get(f"/api/v1/messages?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_numbers_lists_the_sandbox_number(acme):
    numbers = acme.get("/api/v1/numbers").get_json()["data"]
    assert len(numbers) == 1
    assert numbers[0]["phone_number_id"] == acme.number
    assert numbers[0]["mode"] == "sandbox"
    assert numbers[0]["display_phone_number"].startswith("+1 555")


def test_usage_reports_period_quota_and_categories(acme):
    acme.send(to="15551230001")
    usage = acme.get("/api/v1/usage").get_json()
    assert usage["plan"] == {"code": "free", "name": "Free"}
    assert (usage["quota"], usage["used"], usage["remaining"]) == (250, 1, 249)
    assert usage["hard_cap"] is True
    assert set(usage["by_category"]) == {"marketing", "utility", "authentication", "service"}
    assert usage["period"]["start"] < usage["period"]["end"]


def test_revoked_key_is_refused(app, acme):
    from saas.extensions import db
    from saas.tenants.models import ApiKey, Tenant
    from saas.tenants.services import revoke_api_key

    with app.app_context():
        tenant = db.session.get(Tenant, acme.tenant_id)
        key = db.session.scalars(db.select(ApiKey).where(ApiKey.tenant_id == tenant.id)).one()
        revoke_api_key(tenant, key.id)
        db.session.remove()
    assert acme.get("/api/v1/usage").status_code == 401


def test_suspended_tenant_cannot_send(app, acme):
    from saas.extensions import db
    from saas.tenants.models import Tenant

    with app.app_context():
        db.session.get(Tenant, acme.tenant_id).status = "suspended"
        db.session.commit()
        db.session.remove()
    response = acme.send()
    assert response.status_code == 403
    assert response.get_json()["error"]["reason"] == "tenant_suspended"
