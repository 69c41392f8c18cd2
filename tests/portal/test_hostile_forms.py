"""Whatever a browser posts, the portal answers with a page (refusals are 400), never a 500."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import PhoneNumber
from saas.tenants.models import ApiKey, Tenant
from tests.conftest import csrf_token
from tests.factories import row_counts, sender


@pytest.mark.parametrize("length", [190, 191, 195, 200])
def test_a_long_company_name_still_gets_its_sandbox_number(app, auth, length):
    company = "A" * (length - 1) + "Z"
    response = auth.signup(company=company)
    assert response.status_code == 303, response.get_data(as_text=True)
    with app.app_context():
        tenant = db.session.scalar(select(Tenant))
        number = db.session.scalar(select(PhoneNumber))
        assert tenant.name == company
        assert len(number.verified_name) <= 200
        assert number.verified_name.endswith(" (sandbox)")
        db.session.remove()


@pytest.mark.parametrize("company", ["Acme\x00Ltd", "Acme\nLtd", "Acme\x1bLtd", "Acme \u202egnp.exe",
                                     "\u2066Acme\u2069", "Acme\u200f"])
def test_control_and_bidi_characters_in_a_company_name_are_refused(app, auth, company):
    before = row_counts(app)
    response = auth.signup(company=company)
    assert response.status_code == 400
    assert "not allowed" in response.get_data(as_text=True)
    assert row_counts(app) == before


def test_a_company_name_past_its_column_is_refused(app, auth):
    before = row_counts(app)
    assert auth.signup(company="A" * 201).status_code == 400
    assert row_counts(app) == before


@pytest.mark.parametrize("name", ["key\x00one", "key\r\none", "key\u202eeno", "k" * 101])
def test_bad_key_names_are_refused(app, auth, name):
    auth.signup()
    response = auth.create_key(name)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(ApiKey)) is None
        db.session.remove()


@pytest.mark.parametrize("target", ["/%0D%0ASet-Cookie:%20a=b", "/dashboard%00", "/\\evil.example",
                                    "//evil.example", "https://evil.example/"])
def test_login_next_with_control_characters_or_another_site_goes_to_the_dashboard(client, auth, target):
    auth.signup()
    auth.logout()
    token = csrf_token(client, "/login")
    response = client.post(f"/login?next={target}", data={"csrf_token": token, "email": "owner@acme.example.com",
                                                          "password": "correct horse"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert "Set-Cookie: a" not in str(response.headers)


def test_login_next_to_a_page_of_ours_is_followed(client, auth):
    auth.signup()
    auth.logout()
    token = csrf_token(client, "/login")
    response = client.post("/login?next=/keys", data={"csrf_token": token, "email": "owner@acme.example.com",
                                                      "password": "correct horse"})
    assert response.headers["Location"] == "/keys"


@pytest.mark.parametrize("number", ["1%002", "%00", "9" * 65, "%EF%BC%91%EF%BC%92%EF%BC%93"])
def test_odd_phone_number_ids_in_the_path_are_404(client, number):
    acme = sender(client)
    send = client.post(f"/v23.0/{number}/messages", headers=acme.headers,
                       json={"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "hi"}})
    read = client.post(f"/v23.0/{number}/messages", headers=acme.headers,
                       json={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"})
    assert (send.status_code, read.status_code) == (404, 404)
    assert send.get_json()["error"]["error_subcode"] == 33


@pytest.mark.parametrize("to", ["١٥٥٥١٢٣٤٥٦٧", "１５５５１２３４５６７", "۱۵۵۵۱۲۳۴۵۶۷", "+1\u3000555 123 4567"])
def test_phone_numbers_in_other_scripts_digits_are_refused(client, to):
    acme = sender(client)
    for response in (acme.send(to=to), client.post("/api/v1/messages", headers=acme.headers, json={
            "messaging_product": "whatsapp", "to": to, "text": {"body": "hi"}})):
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "to" in response.get_json()["error"]["details"]
    assert acme.get("/api/v1/usage").get_json()["messages"] == 0


@pytest.mark.parametrize("path", ["/keys/1%00/revoke", "/numbers/%00/test", "/numbers/1%0A/disconnect",
                                  "/templates/%00/delete", "/billing/change/pro%00", "/keys/" + "9" * 300 + "/revoke"])
def test_path_parameters_with_control_characters_or_past_any_column_are_404(client, auth, path):
    auth.signup()
    token = csrf_token(client, "/keys")
    assert client.post(path, data={"csrf_token": token}).status_code == 404
    if path.startswith("/billing") or path.endswith("disconnect"):
        assert client.get(path).status_code == 404


def test_admin_paths_and_search_with_nul_are_answered(app, client):
    from saas.tenants import services as accounts
    from tests.conftest import AuthActions

    with app.app_context():
        accounts.create_platform_admin("root@platform.example.com", "correct horse")
        db.session.remove()
    AuthActions(client).login(email="root@platform.example.com", password="correct horse")
    assert client.get("/admin/tenants?q=ac%00me").status_code == 200
    assert client.get("/admin/tenants/1%00").status_code == 404
    assert client.get("/admin/plans/pro%00/edit").status_code == 404
    assert client.get("/admin/audit?tenant=%00").status_code == 404
