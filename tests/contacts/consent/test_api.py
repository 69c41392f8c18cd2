"""The consent API: a contact's consent per number with its history, an opt-in recorded with its proof or an
opt-out, the keyword list; bad input in the envelope, another tenant's contact or number not found."""
from __future__ import annotations

import pytest

from saas.contacts import directory
from saas.extensions import db
from tests.contacts.consent.factories import opt_out
from tests.factories import sender
from tests.messaging.live import template_payload

ADA = "16505551234"
PROOF = "Ticked 'Offers on WhatsApp' at checkout, order #1042, 2026-12-01"


def a_contact(app, api, wa_id=ADA) -> int:
    with app.app_context():
        contact, _ = directory.find_or_create(db.session, api.tenant_id, wa_id=wa_id, name="Ada")
        db.session.commit()
        contact_id = contact.id
        db.session.remove()
    return contact_id


@pytest.fixture
def acme(client):
    return sender(client, "pro")


def record(api, contact_id, **body):
    return api.client.post(f"/api/v1/contacts/{contact_id}/consent", headers=api.headers, json=body)


def test_an_opt_in_with_its_proof_is_recorded_shown_and_lets_marketing_through(app, acme):
    contact_id = a_contact(app, acme)
    refused = acme.send(payload=template_payload(ADA, "seasonal_promotion"))
    assert refused.get_json()["error"]["details"]["contact_id"] == contact_id

    response = record(acme, contact_id, phone_number_id=acme.number, state="opted_in", proof=PROOF, source="form")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["changed"] is True
    [number] = body["numbers"]
    assert (number["phone_number_id"], number["state"], number["source"], number["proof"]) == (
        acme.number, "opted_in", "form", PROOF)
    assert number["actor"].startswith("api key #")
    [change] = body["history"]
    assert (change["state"], change["previous"], change["phone_number_id"], change["proof"]) == (
        "opted_in", None, acme.number, PROOF)
    assert acme.send(payload=template_payload(ADA, "seasonal_promotion")).status_code == 200

    again = record(acme, contact_id, phone_number_id=acme.number, state="opted_in", proof="another")
    assert again.get_json()["changed"] is False and len(again.get_json()["history"]) == 1
    out = record(acme, contact_id, phone_number_id=acme.number, state="opted_out")
    assert out.get_json()["numbers"][0]["state"] == "opted_out"
    assert [c["state"] for c in acme.get(f"/api/v1/contacts/{contact_id}/consent").get_json()["history"]] == [
        "opted_out", "opted_in"]


def test_a_contact_with_nothing_recorded_shows_each_number_without_a_state(app, acme):
    body = acme.get(f"/api/v1/contacts/{a_contact(app, acme)}/consent").get_json()
    assert body["object"] == "contact_consent" and body["wa_id"] == ADA and body["history"] == []
    assert [(n["phone_number_id"], n["state"]) for n in body["numbers"]] == [(acme.number, None)]


@pytest.mark.parametrize("body, field", [
    ({"state": "opted_in"}, "proof"),
    ({"state": "opted_in", "proof": "   "}, "proof"),
    ({"state": "subscribed", "proof": PROOF}, "state"),
    ({"state": "opted_in", "proof": "x" * 1001}, "proof"),
    ({"state": "opted_out", "source": "keyword"}, "source"),
    ({"state": "opted_out", "phone_number_id": ""}, "phone_number_id"),
    ({"state": "opted_out", "phone_number_id": 42}, "phone_number_id"),
    ({"proof": PROOF}, "state"),
])
def test_bad_bodies_are_refused_field_by_field(app, acme, body, field):
    response = record(acme, a_contact(app, acme), **{"phone_number_id": acme.number, **body})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and field in error["details"]


def test_control_characters_and_nul_are_refused(app, acme):
    contact_id = a_contact(app, acme)
    nul = record(acme, contact_id, phone_number_id=acme.number, state="opted_in", proof="yes\x00")
    assert nul.status_code == 400 and "NUL" in nul.get_json()["error"]["message"]
    bell = record(acme, contact_id, phone_number_id=acme.number, state="opted_in", proof="yes\x07")
    assert bell.status_code == 400 and "proof" in bell.get_json()["error"]["details"]
    assert acme.client.post(f"/api/v1/contacts/{contact_id}/consent", headers=acme.headers,
                            data="not json").status_code == 400


def test_another_tenants_contact_and_number_are_not_found(app, client, acme):
    other = sender(client, "pro")
    theirs, mine = a_contact(app, other), a_contact(app, acme)
    for response in (acme.get(f"/api/v1/contacts/{theirs}/consent"),
                     record(acme, theirs, phone_number_id=acme.number, state="opted_out"),
                     record(acme, mine, phone_number_id=other.number, state="opted_out")):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    assert other.get(f"/api/v1/contacts/{theirs}/consent").get_json()["numbers"][0]["state"] is None
    for odd in ("0", "-1", "abc", "99999999999999999999"):
        assert acme.get(f"/api/v1/contacts/{odd}/consent").status_code == 404


def test_keywords_read_replace_and_restore_the_defaults(app, acme):
    defaults = acme.get("/api/v1/consent/keywords").get_json()
    assert defaults["defaults"] is True
    assert {"keyword": "İPTAL", "action": "opted_out"} in defaults["keywords"]

    put = acme.client.put("/api/v1/consent/keywords", headers=acme.headers, json={"keywords": [
        {"keyword": "  Hayır ", "action": "opted_out"}, {"keyword": "Evet", "action": "opted_in"}]})
    assert put.status_code == 200
    assert put.get_json() == {"object": "consent_keywords", "defaults": False, "keywords": [
        {"keyword": "Hayır", "action": "opted_out"}, {"keyword": "Evet", "action": "opted_in"}]}
    assert acme.get("/api/v1/consent/keywords").get_json() == put.get_json()

    restored = acme.client.put("/api/v1/consent/keywords", headers=acme.headers, json={"keywords": []})
    assert restored.get_json() == defaults


@pytest.mark.parametrize("keywords, field", [
    ([{"keyword": "STOP", "action": "opted_out"}, {"keyword": "stop", "action": "opted_in"}], "keywords[1]"),
    ([{"keyword": "START", "action": "opted_in"}], "keywords"),
    ([{"keyword": "", "action": "opted_out"}], "keywords"),
    ([{"keyword": "STOP\u202e", "action": "opted_out"}], "keywords[0]"),
    ([{"keyword": "x" * 41, "action": "opted_out"}], "keywords"),
    ([{"keyword": f"W{n}", "action": "opted_out"} for n in range(51)], "keywords"),
    ("STOP", "keywords"),
])
def test_a_bad_keyword_list_is_refused_and_the_old_one_kept(app, acme, keywords, field):
    response = acme.client.put("/api/v1/consent/keywords", headers=acme.headers, json={"keywords": keywords})
    assert response.status_code == 400
    assert field in response.get_json()["error"]["details"]
    assert acme.get("/api/v1/consent/keywords").get_json()["defaults"] is True


def test_one_tenants_keywords_are_its_own(app, client, acme):
    other = sender(client, "pro")
    acme.client.put("/api/v1/consent/keywords", headers=acme.headers,
                    json={"keywords": [{"keyword": "HAYIR", "action": "opted_out"}]})
    assert other.get("/api/v1/consent/keywords").get_json()["defaults"] is True


def test_an_opt_out_recorded_elsewhere_is_shown_with_its_source(app, acme):
    [contact_id] = opt_out(app, acme.tenant_id, acme.number, ADA)
    body = acme.get(f"/api/v1/contacts/{contact_id}/consent").get_json()
    assert (body["numbers"][0]["state"], body["numbers"][0]["source"]) == ("opted_out", "api")


def test_every_consent_call_needs_a_key(client):
    assert client.get("/api/v1/consent/keywords").status_code == 401
    response = client.post("/api/v1/contacts/1/consent", json={"state": "opted_out"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthenticated"
