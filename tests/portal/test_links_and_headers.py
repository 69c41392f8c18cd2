"""Links never take a forged Host; secret pages are not cached; HSTS in production; suspended accounts change nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.tenants.models import TENANT_SUSPENDED, ApiKey, Tenant
from tests.conftest import csrf_token
from tests.factories import sender

IMAGE = {"messaging_product": "whatsapp", "to": "15551234567", "type": "image",
         "image": {"link": "https://cdn.example.com/a.png"}}


def upgrade_url(client, acme, host):
    response = client.post("/api/v1/messages", json=IMAGE, headers={**acme.headers, "Host": host})
    assert response.status_code == 403, response.get_data(as_text=True)
    return response.get_json()["error"]["upgrade_url"]


def test_a_forged_host_never_reaches_upgrade_url(client):
    acme = sender(client)
    assert upgrade_url(client, acme, "evil.example") == "http://localhost:5000/billing"
    assert upgrade_url(client, acme, "localhost:8000") == "http://localhost:8000/billing"
    assert upgrade_url(client, acme, "127.0.0.1:5000") == "http://127.0.0.1:5000/billing"


def test_public_base_url_is_the_only_base_for_links(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://relay.example.com")
    acme = sender(client)
    assert upgrade_url(client, acme, "evil.example") == "https://relay.example.com/billing"
    assert upgrade_url(client, acme, "localhost") == "https://relay.example.com/billing"


def test_trusted_hosts_are_used_for_links_and_others_are_refused_with_400(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "TRUSTED_HOSTS", ["relay.test", "localhost"])
    acme = sender(client)
    assert upgrade_url(client, acme, "relay.test") == "http://relay.test/billing"
    refused = client.post("/api/v1/messages", json=IMAGE, headers={**acme.headers, "Host": "evil.example"})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_request"
    page = client.get("/login", headers={"Host": "evil.example"})
    assert page.status_code == 400
    assert "does not answer for that host" in page.get_data(as_text=True)


def test_the_key_page_example_does_not_take_a_forged_host(client, auth):
    auth.signup()
    token = csrf_token(client, "/keys")
    # The browser's session cookie, sent to the forged host name too.
    client.set_cookie("session", client.get_cookie("session").value, domain="evil.example")
    page = client.post("/keys", data={"csrf_token": token, "name": "Production"}, headers={"Host": "evil.example"})
    assert page.status_code == 201
    html = page.get_data(as_text=True)
    assert "evil.example" not in html
    assert "curl -X POST http://localhost:5000/v23.0/" in html


def test_the_page_showing_a_new_key_is_never_stored(client, auth):
    auth.signup()
    created = auth.create_key()
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    assert client.get("/keys").headers["Cache-Control"] == "no-store"


def test_hsts_only_when_configured(app, client, monkeypatch):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    monkeypatch.setitem(app.config, "HSTS", True)
    assert client.get("/login").headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


def test_bidi_controls_stored_earlier_are_shown_inert(app, client, auth):
    auth.signup(company="Acme Ltd")
    with app.app_context():
        tenant = db.session.scalar(select(Tenant))
        tenant.name = "Acme \u202egnp.exe"
        db.session.add(ApiKey(tenant_id=tenant.id, name="ke\u202ey\u0007", prefix="wsk_x", secret_hash="0" * 64))
        db.session.commit()
    for path in ("/dashboard", "/keys", "/numbers"):
        html = client.get(path).get_data(as_text=True)
        assert "\u202e" not in html and "\u0007" not in html, path
    assert "Acme gnp.exe" in client.get("/dashboard").get_data(as_text=True)


def suspend(app):
    with app.app_context():
        db.session.scalar(select(Tenant)).status = TENANT_SUSPENDED
        db.session.commit()


def test_a_suspended_tenant_sees_the_suspended_page_and_changes_nothing(app, client, auth):
    auth.signup()
    token = csrf_token(client, "/keys")
    suspend(app)
    for path in ("/dashboard", "/keys", "/numbers", "/billing", "/templates"):
        page = client.get(path)
        assert page.status_code == 403, path
        assert "This account is suspended" in page.get_data(as_text=True)
    created = client.post("/keys", data={"csrf_token": token, "name": "Sneaky"})
    assert created.status_code == 403
    connect = client.post("/numbers", data={"csrf_token": token, "phone_number_id": "123456789012345",
                                            "waba_id": "123456789012345", "access_token": "EAAG" + "x" * 40})
    assert connect.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(ApiKey)) is None
        db.session.remove()


def test_a_suspended_tenant_can_still_log_in_and_out(client, auth, app):
    auth.signup()
    suspend(app)
    auth.logout()
    assert auth.login().status_code == 302
    assert client.get("/dashboard").status_code == 403
    token = csrf_token(client, "/login")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
