"""Consent for tests, recorded through the real services: contacts opted in or out of a number's marketing."""
from __future__ import annotations

from sqlalchemy import select

from saas.billing.catalog import plan_by_code
from saas.contacts import directory
from saas.contacts.consent import records
from saas.contacts.models import SOURCE_API
from saas.extensions import db
from saas.messaging.models import PhoneNumber

PROOF = "Ticked 'Send me offers on WhatsApp' at checkout"


def _number_pk(tenant_id: int, number) -> int:
    if isinstance(number, int):
        return number
    return db.session.scalar(select(PhoneNumber.id).where(PhoneNumber.tenant_id == tenant_id,
                                                          PhoneNumber.phone_number_id == number))


def _record(app, tenant_id: int, number, wa_ids, state: str, proof: str | None) -> list[int]:
    with app.app_context():
        pk = _number_pk(tenant_id, number)
        ids = []
        for wa_id in wa_ids:
            contact, _ = directory.find_or_create(db.session, tenant_id, wa_id=wa_id)
            records.record(db.session, tenant_id, contact, pk, state, source=SOURCE_API, actor="test", proof=proof)
            ids.append(contact.id)
        db.session.commit()
        db.session.remove()
    return ids


def opt_in(app, tenant_id: int, number, *wa_ids: str, proof: str = PROOF) -> list[int]:
    """The tenant's contacts ``wa_ids`` (made when new) opted in to marketing from ``number`` (Meta's
    phone_number_id, or our PhoneNumber id). Returns their contact ids. Commits."""
    return _record(app, tenant_id, number, wa_ids, records.OPTED_IN, proof)


def opt_out(app, tenant_id: int, number, *wa_ids: str) -> list[int]:
    """The contacts ``wa_ids`` opted out of marketing from ``number``; see opt_in."""
    return _record(app, tenant_id, number, wa_ids, records.OPTED_OUT, None)


def consent_managed_by_tenant(app, code: str, managed: bool = True) -> None:
    """The plan ``code`` leaves consent to its tenants (only an opt-out refuses a marketing send)."""
    with app.app_context():
        plan_by_code(code).consent_managed_by_tenant = managed
        db.session.commit()
        db.session.remove()
