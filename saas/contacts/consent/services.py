"""What the API and the portal ask of consent: a contact's consent per number with its history, a change
recorded by the tenant, the keyword list. Every lookup is scoped by the tenant (another tenant's contact
or number is NotFound); each change commits."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from saas.contacts.consent import keywords, records
from saas.contacts.models import OPTED_IN, SOURCE_API, SOURCE_FORM, SOURCE_PORTAL, Consent, Contact, ContactEvent
from saas.errors import InvalidRequest, NotFound
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from saas.tenants.scoping import get_owned
from saas.text import problem

# The sources a tenant may record a change with (the others are ours: keyword, whatsapp, import).
TENANT_SOURCES = (SOURCE_API, SOURCE_FORM, SOURCE_PORTAL)
HISTORY = 100


@dataclass(frozen=True)
class NumberConsent:
    """A contact's consent for one of the tenant's numbers (``state`` None: nothing recorded)."""

    number_id: int
    phone_number_id: str
    display_number: str
    state: str | None
    source: str | None
    actor: str | None
    proof: str | None
    changed_at: datetime | None


@dataclass(frozen=True)
class ConsentView:
    contact: Contact
    numbers: list[NumberConsent]
    history: list[ContactEvent]  # consent changes, newest first (at most HISTORY)
    numbers_by_id: dict          # our number id -> (Meta's phone_number_id, display number), for the history

    def number_of_change(self, event: ContactEvent) -> tuple[str | None, str | None]:
        """The number a history entry is about: (Meta's phone_number_id, display number), or Nones."""
        return self.numbers_by_id.get((event.detail or {}).get("phone_number_id"), (None, None))


def contact_of(tenant, contact_id) -> Contact:
    return get_owned(Contact, contact_id, tenant, what="contact")


def consent_of(tenant, contact) -> ConsentView:
    """The contact's consent for each of the tenant's numbers (connected ones, and any other it has a
    record for) and its latest consent changes."""
    numbers = db.session.execute(select(PhoneNumber.id, PhoneNumber.phone_number_id, PhoneNumber.display_number,
                                        PhoneNumber.disconnected_at)
                                 .where(PhoneNumber.tenant_id == tenant.id).order_by(PhoneNumber.id)).all()
    held = {row.phone_number_id: row for row in db.session.scalars(select(Consent).where(
        Consent.tenant_id == tenant.id, Consent.contact_id == contact.id))}
    shown = []
    for number in numbers:
        row = held.get(number.id)
        if row is None and number.disconnected_at is not None:
            continue
        shown.append(NumberConsent(number.id, number.phone_number_id, number.display_number,
                                   *((row.state, row.source, row.actor, row.proof, row.changed_at) if row
                                     else (None,) * 5)))
    history = list(db.session.scalars(select(ContactEvent).where(
        ContactEvent.tenant_id == tenant.id, ContactEvent.contact_id == contact.id,
        ContactEvent.kind.in_(records.STATES)).order_by(ContactEvent.id.desc()).limit(HISTORY)))
    return ConsentView(contact, shown, history, {n.id: (n.phone_number_id, n.display_number) for n in numbers})


def number_of(tenant, *, phone_number_id: str | None = None, number_id: int | None = None) -> PhoneNumber:
    """One of the tenant's connected numbers, by Meta's id (the API's) or ours (the portal's); NotFound otherwise."""
    query = select(PhoneNumber).where(PhoneNumber.tenant_id == tenant.id, PhoneNumber.disconnected_at.is_(None))
    if phone_number_id is not None:
        query = query.where(PhoneNumber.phone_number_id == phone_number_id)
    else:
        query = query.where(PhoneNumber.id == number_id)
    number = db.session.scalar(query)
    if number is None:
        raise NotFound("No such phone number.", details={"phone_number_id": phone_number_id})
    return number


def record_change(tenant, contact, number, state: str, *, proof: str | None, source: str, actor: str) -> bool:
    """Record the tenant's change of ``contact``'s consent for ``number``; whether it changed. An opt-in needs
    its proof (what the contact agreed to, and where); InvalidRequest otherwise. Commits."""
    if state not in records.STATES:
        raise InvalidRequest(details={"state": [f"Must be one of: {', '.join(records.STATES)}."]})
    if source not in TENANT_SOURCES:
        raise InvalidRequest(details={"source": [f"Must be one of: {', '.join(TENANT_SOURCES)}."]})
    proof = (proof or "").strip() or None
    if state == OPTED_IN and proof is None:
        raise InvalidRequest("An opt-in needs its proof: what the contact agreed to, when and where.",
                             details={"proof": ["Required for an opt-in."]})
    if proof is not None and (len(proof) > records.PROOF_LENGTH or problem(proof, allow="\n\r\t")):
        raise InvalidRequest(details={"proof": [f"At most {records.PROOF_LENGTH} characters, no control "
                                                "characters but line breaks and tabs."]})
    try:
        changed = records.record(db.session, tenant.id, contact, number.id, state, source=source, actor=actor,
                                 proof=proof)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return changed


def keywords_of(tenant) -> tuple[list[keywords.Keyword], bool]:
    return keywords.keywords_of(db.session, tenant.id)


def replace_keywords(tenant, entries) -> list[keywords.Keyword]:
    """The tenant's keyword list replaced (KeywordError for a bad one; an empty list: the defaults). Commits."""
    try:
        kept = keywords.replace_keywords(db.session, tenant.id, entries)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return kept
