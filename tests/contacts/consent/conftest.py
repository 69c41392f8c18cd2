"""Fixtures for consent: WhatsApp's webhook configured (signed notifications in), and readers of what consent
recorded."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.contacts.models import Consent, Contact, ContactEvent
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from tests import whatsapp_payloads as wa
from tests.webhooks.test_whatsapp_inbound import SECRET, VERIFY  # noqa: F401


@pytest.fixture
def whatsapp(app):
    """The app with WhatsApp's app secret set; put back after."""
    saved = {name: app.config.get(name) for name in ("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN")}
    app.config.update(WHATSAPP_APP_SECRET=SECRET, WHATSAPP_VERIFY_TOKEN=VERIFY)
    yield app
    app.config.update(saved)


def states(app, tenant_id: int) -> dict:
    """The tenant's consent: (wa_id, our number id) -> (state, source)."""
    with app.app_context():
        found = {(wa_id, number): (state, source) for wa_id, number, state, source in db.session.execute(
            select(Contact.wa_id, Consent.phone_number_id, Consent.state, Consent.source)
            .join(Contact, Contact.id == Consent.contact_id).where(Consent.tenant_id == tenant_id))}
        db.session.remove()
    return found


def history(app, tenant_id: int) -> list[tuple]:
    """The tenant's consent changes in order: (wa_id, kind, source, previous, proof)."""
    with app.app_context():
        rows = [(wa_id, e.kind, e.source, e.detail.get("previous"), e.detail.get("proof"))
                for e, wa_id in db.session.execute(
                    select(ContactEvent, Contact.wa_id).join(Contact, Contact.id == ContactEvent.contact_id)
                    .where(ContactEvent.tenant_id == tenant_id, ContactEvent.kind.in_(("opted_in", "opted_out")))
                    .order_by(ContactEvent.id))]
        db.session.remove()
    return rows


def webhook_number(app, number_pk: int) -> wa.Number:
    """A tenant's number as WhatsApp's notifications name it (tests.whatsapp_payloads)."""
    with app.app_context():
        number = wa.Number(db.session.get(PhoneNumber, number_pk))
        db.session.remove()
    return number
