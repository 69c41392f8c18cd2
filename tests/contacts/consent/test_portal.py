"""Consent in the portal: the keyword settings page, and the partial the contact's page includes (the contact's
consent per number, its history, and the form that records an opt-in with its proof or an opt-out)."""
from __future__ import annotations

import pytest
from flask import render_template_string
from flask_login import login_user
from sqlalchemy import select

from saas.contacts import directory
from saas.contacts.models import Contact
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.tenants.models import Tenant, User
from tests.conftest import csrf_token
from tests.contacts.consent.conftest import history, states
from tests.contacts.consent.factories import opt_out
from tests.factories import make_tenant

ADA = "16505551234"
EMAIL = "owner@acme.example.com"


@pytest.fixture
def owner(app, auth, mailbox):
    """A signed-up, logged-in owner (the client), with a contact ADA; (tenant id, contact id)."""
    auth.signup()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == EMAIL))
        contact, _ = directory.find_or_create(db.session, user.tenant_id, wa_id=ADA, name="Ada")
        db.session.commit()
        found = (user.tenant_id, contact.id)
        db.session.remove()
    return found


def number_of(app, tenant_id) -> int:
    """The tenant's (sandbox) number's id."""
    with app.app_context():
        number_id = numbers_for(db.session.get(Tenant, tenant_id))[0].id
        db.session.remove()
    return number_id


def partial(app, contact_id, email=EMAIL) -> str:
    """The contact's consent partial as the contact's page renders it, for the logged-in ``email``."""
    with app.test_request_context(f"/contacts/{contact_id}"):
        login_user(db.session.scalar(select(User).where(User.email == email)))
        html = render_template_string('{% include "portal/contacts/_consent.html" %}',
                                      contact=db.session.get(Contact, contact_id))
        db.session.remove()
    return html


def test_the_partial_shows_each_number_and_records_an_opt_in_with_its_proof(app, client, owner):
    tenant_id, contact_id = owner
    number_id = number_of(app, tenant_id)
    html = partial(app, contact_id)
    assert 'id="contact-consent"' in html and "no opt-in" in html and 'id="consent-form"' in html
    assert f'value="/contacts/{contact_id}"' in html  # the form returns to the contact's page

    response = client.post(f"/contacts/{contact_id}/consent", data={
        "csrf_token": csrf_token(client, "/consent"), "number": number_id, "state": "opted_in",
        "proof": "Said yes at the till, receipt 5521", "next": f"/contacts/{contact_id}"})

    assert response.status_code == 302 and response.headers["Location"] == f"/contacts/{contact_id}"
    assert states(app, tenant_id) == {(ADA, number_id): ("opted_in", "portal")}
    assert history(app, tenant_id) == [(ADA, "opted_in", "portal", None, "Said yes at the till, receipt 5521")]
    html = partial(app, contact_id)
    assert "opted in" in html and "receipt 5521" in html and EMAIL in html


def test_an_opt_in_without_proof_is_refused_and_nothing_changes(app, client, owner):
    tenant_id, contact_id = owner
    response = client.post(f"/contacts/{contact_id}/consent", data={
        "csrf_token": csrf_token(client, "/consent"), "number": number_of(app, tenant_id), "state": "opted_in",
        "proof": "", "next": "https://evil.example.com/"}, follow_redirects=True)
    assert response.request.path == "/consent"  # never to another site
    assert "An opt-in needs its proof" in response.get_data(as_text=True)
    assert states(app, tenant_id) == {}


def test_the_partial_shows_an_opt_out_and_its_history(app, owner):
    tenant_id, contact_id = owner
    opt_out(app, tenant_id, number_of(app, tenant_id), ADA)
    html = partial(app, contact_id)
    assert "opted out" in html and 'id="consent-history"' in html


def test_another_tenants_contact_or_number_is_not_found(app, client, owner):
    tenant_id, contact_id = owner
    with app.app_context():
        stranger = make_tenant("pro")
        theirs = directory.find_or_create(db.session, stranger.id, wa_id=ADA)[0].id
        their_number = numbers_for(stranger)[0].id
        db.session.commit()
        db.session.remove()
    token = csrf_token(client, "/consent")
    assert client.post(f"/contacts/{theirs}/consent", data={
        "csrf_token": token, "number": number_of(app, tenant_id), "state": "opted_out"}).status_code == 404
    assert client.post(f"/contacts/{contact_id}/consent", data={
        "csrf_token": token, "number": their_number, "state": "opted_out"}).status_code == 404
    assert states(app, tenant_id) == {}


def test_the_settings_page_saves_keywords_and_restores_the_defaults(app, client, owner):
    page = client.get("/consent").get_data(as_text=True)
    assert 'id="defaults-in-use"' in page and "İPTAL" in page
    token = csrf_token(client, "/consent")
    saved = client.post("/consent/keywords", data={"csrf_token": token, "opt_out": "HAYIR\r\nDUR\r\n\r\n",
                                                   "opt_in": "EVET"}, follow_redirects=True)
    assert "Your keywords are saved." in saved.get_data(as_text=True)
    page = client.get("/consent").get_data(as_text=True)
    assert 'id="defaults-in-use"' not in page and "HAYIR\nDUR</textarea>" in page

    refused = client.post("/consent/keywords", data={"csrf_token": token, "opt_out": "stop\nSTOP!", "opt_in": ""})
    assert refused.status_code == 400 and "in the list twice" in refused.get_data(as_text=True)

    restored = client.post("/consent/keywords", data={"csrf_token": token, "opt_out": "", "opt_in": ""},
                           follow_redirects=True)
    assert "The default keywords apply again." in restored.get_data(as_text=True)
