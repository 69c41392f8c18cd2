"""Live numbers send only for a tenant whose owner verified their email; the sandbox always sends."""
from __future__ import annotations

from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Message
from saas.tenants.models import User
from saas.timeutil import utcnow
from tests.factories import Sender, make_tenant, settle
from tests.messaging.live import inbound, live_number

CONTACT = "15551230001"


def unverified_sender(client, plan="starter") -> Sender:
    with client.application.app_context():
        result = Sender(client, make_tenant(plan, verified=False))
        db.session.remove()
    return result


def verify_owner(app, tenant_id):
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.tenant_id == tenant_id))
        owner.email_verified_at = utcnow()
        db.session.commit()
        db.session.remove()


def test_an_unverified_tenant_is_refused_on_a_live_number_and_nothing_goes_upstream(app, client, live):
    acme = unverified_sender(client)
    phone_number_id, pk, _, _ = live_number(app, live, acme.tenant_id)
    inbound(app, acme.tenant_id, pk, CONTACT)
    upstream_before = len(live.requests("POST"))

    response = acme.send(to=CONTACT, number=phone_number_id)

    assert response.status_code == 403, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == 4032
    assert "not verified" in error["message"] and "sandbox number works" in error["message"]
    with app.app_context():
        sent = db.session.scalars(select(Message).where(Message.tenant_id == acme.tenant_id,
                                                        Message.direction == "out")).all()
        assert sent == []
        db.session.remove()
    assert len(live.requests("POST")) == upstream_before


def test_an_unverified_tenant_sends_from_its_sandbox_number(client):
    acme = unverified_sender(client, "free")
    response = acme.send(to=CONTACT)
    assert response.status_code == 200, response.get_json()
    settle(client.application)


def test_once_the_owner_verifies_the_live_number_sends(app, client, live):
    acme = unverified_sender(client)
    phone_number_id, pk, _, _ = live_number(app, live, acme.tenant_id)
    inbound(app, acme.tenant_id, pk, CONTACT)
    assert acme.send(to=CONTACT, number=phone_number_id).status_code == 403

    verify_owner(app, acme.tenant_id)

    response = acme.send(to=CONTACT, number=phone_number_id)
    assert response.status_code == 200, response.get_json()
