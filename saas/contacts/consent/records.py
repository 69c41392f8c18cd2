"""Recording consent: a contact's opt-in or opt-out of marketing from one of the tenant's numbers, each
change kept in the contact's history (a ContactEvent ``opted_in`` or ``opted_out``).

One Consent row per contact and number holds the current state, its source, actor, proof and time.
A repeat of the current state records nothing (no new history entry, the first proof kept): the
history lists changes, and a redelivered event or a second STOP changes nothing.

Changes the contact made themselves (a keyword, Meta's user_preferences, error 131050) carry the time
they were made. One older than the contact's own latest recorded change is stale news (WhatsApp
repeats webhooks) and is not applied; an opt-in made in the same second as a recorded opt-out loses to
it. Changes a tenant records (API, portal, import) apply as they come, with the time they are recorded.

Functions here take a session (the request's, or one bound to a consumer's connection), flush and
never commit: the caller's transaction owns the change.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from saas.contacts.models import (
    OPTED_IN, OPTED_OUT, SOURCE_IMPORT, SOURCE_KEYWORD, SOURCE_WHATSAPP, Contact, Consent, ContactEvent,
)
from saas.database import insert_for, insert_many
from saas.messaging.models import PhoneNumber
from saas.timeutil import utcnow

STATES = (OPTED_IN, OPTED_OUT)
# Sources of changes the contact made themselves, with the time they made them.
CONTACT_SOURCES = (SOURCE_KEYWORD, SOURCE_WHATSAPP)
ACTOR_LENGTH = 200
PROOF_LENGTH = 1000
# Contacts read or written per statement by the set-based import opt-in.
CHUNK = 1000


def _bounded(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = str(value).replace("\x00", "")
    return (value if len(value) <= limit else value[: limit - 1] + "…") or None


def opt_in(session, tenant_id: int, contact, number_id: int, *, source: str, actor: str | None = None,
           proof: str | None = None, at: datetime | None = None, detail: dict | None = None) -> bool:
    """Record that ``contact`` (a Contact or its id) agreed to marketing from the tenant's number ``number_id``
    (our PhoneNumber id). True when the state changed; False for a repeat or stale news. Flushes only."""
    return record(session, tenant_id, contact, number_id, OPTED_IN, source=source, actor=actor, proof=proof,
                  at=at, detail=detail)


def opt_out(session, tenant_id: int, contact, number_id: int, *, source: str, actor: str | None = None,
            proof: str | None = None, at: datetime | None = None, detail: dict | None = None) -> bool:
    """Record that ``contact`` wants no marketing from the number ``number_id``; see ``opt_in``."""
    return record(session, tenant_id, contact, number_id, OPTED_OUT, source=source, actor=actor, proof=proof,
                  at=at, detail=detail)


_LOCKED = (select(Consent.id, Consent.state, Consent.source, Consent.changed_at))


def _current(session, tenant_id: int, contact_id: int, number_id: int):
    """The contact's consent row for the number, locked for the change (PostgreSQL; SQLite has one writer)."""
    return session.execute(_LOCKED.where(Consent.tenant_id == tenant_id, Consent.contact_id == contact_id,
                                         Consent.phone_number_id == number_id).with_for_update()).first()


def stale(current, state: str, source: str, at: datetime) -> bool:
    """Whether a change the contact made at ``at`` is older than their own latest recorded change."""
    if source not in CONTACT_SOURCES or current.source not in CONTACT_SOURCES:
        return False
    return at < current.changed_at or (at == current.changed_at and state == OPTED_IN)


def record(session, tenant_id: int, contact, number_id: int, state: str, *, source: str, actor: str | None,
           proof: str | None, at: datetime | None = None, detail: dict | None = None) -> bool:
    """Move the contact's consent for the number to ``state`` (OPTED_IN or OPTED_OUT), with a history entry.

    Returns whether it changed (see the module's rules). Safe under concurrency: the row is locked, and
    two first changes racing to insert it end as one insert and one change of it. Flushes only.
    """
    if state not in STATES:
        raise ValueError(f"consent state must be one of {STATES}, got {state!r}")
    contact_id = contact if isinstance(contact, int) else contact.id
    now = utcnow()
    at = min(at, now) if at is not None and source in CONTACT_SOURCES else now
    change = {"state": state, "source": source, "actor": _bounded(actor, ACTOR_LENGTH),
              "proof": _bounded(proof, PROOF_LENGTH), "changed_at": at}
    session.flush()
    current = _current(session, tenant_id, contact_id, number_id)
    if current is None:
        conn = session.connection()
        inserted = conn.execute(insert_for(conn, Consent).values(
            tenant_id=tenant_id, contact_id=contact_id, phone_number_id=number_id, **change)
            .on_conflict_do_nothing(index_elements=["contact_id", "phone_number_id"])).rowcount
        if inserted:
            _remember(session, tenant_id, contact_id, number_id, None, change, detail)
            return True
        current = _current(session, tenant_id, contact_id, number_id)
    if current.state == state or stale(current, state, source, at):
        return False
    session.execute(update(Consent).where(Consent.id == current.id).values(**change))
    _remember(session, tenant_id, contact_id, number_id, current.state, change, detail)
    return True


def _remember(session, tenant_id, contact_id, number_id, previous, change, detail) -> None:
    session.execute(ContactEvent.__table__.insert().values(
        tenant_id=tenant_id, contact_id=contact_id, kind=change["state"], source=change["source"],
        actor=change["actor"], at=change["changed_at"],
        detail={"phone_number_id": number_id, "previous": previous, "proof": change["proof"], **(detail or {})}))


@dataclass(frozen=True)
class ImportedConsent:
    """What an import's opt-in did: contacts opted in now, already opted in, and kept opted out."""

    opted_in: int
    already_opted_in: int
    kept_opted_out: int


def record_import_opt_in(session, tenant_id: int, contact_ids, phone_number_id: int, proof: str | None,
                         actor: str | None) -> ImportedConsent:
    """Opt in the tenant's contacts ``contact_ids`` for its number ``phone_number_id`` (our PhoneNumber id), with
    the import's ``proof``, in set-based statements (a few per thousand contacts), each new opt-in with its
    history entry. A contact who opted out stays opted out (an import never overrides what a contact said);
    one already opted in keeps its first proof. Ids that are not the tenant's contacts are skipped. Raises
    ValueError when the number is not the tenant's. Flushes only; idempotent.
    """
    if session.scalar(select(PhoneNumber.id).where(PhoneNumber.id == phone_number_id,
                                                   PhoneNumber.tenant_id == tenant_id)) is None:
        raise ValueError("the import's number is not the tenant's")
    session.flush()
    conn = session.connection()
    now = utcnow()
    proof, actor = _bounded(proof, PROOF_LENGTH), _bounded(actor, ACTOR_LENGTH)
    ids = sorted({int(i) for i in contact_ids})
    opted_in = already = kept_out = 0
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        owned = set(conn.execute(select(Contact.id).where(Contact.tenant_id == tenant_id, Contact.id.in_(part)))
                    .scalars())
        states = dict(conn.execute(select(Consent.contact_id, Consent.state).where(
            Consent.tenant_id == tenant_id, Consent.phone_number_id == phone_number_id,
            Consent.contact_id.in_(sorted(owned)))).all())
        already += sum(1 for s in states.values() if s == OPTED_IN)
        kept_out += sum(1 for s in states.values() if s == OPTED_OUT)
        fresh = [cid for cid in sorted(owned) if cid not in states]
        inserted = [row.contact_id for row in insert_many(conn, Consent.__table__, [
            {"tenant_id": tenant_id, "contact_id": cid, "phone_number_id": phone_number_id, "state": OPTED_IN,
             "source": SOURCE_IMPORT, "actor": actor, "proof": proof, "changed_at": now} for cid in fresh],
            returning=("contact_id",), conflict=("contact_id", "phone_number_id"))]
        if inserted:
            # One multi-row INSERT (SQLAlchemy's insertmanyvalues), the JSON detail bound by its column type.
            conn.execute(ContactEvent.__table__.insert(), [
                {"tenant_id": tenant_id, "contact_id": cid, "kind": OPTED_IN, "source": SOURCE_IMPORT,
                 "actor": actor, "detail": {"phone_number_id": phone_number_id, "previous": None, "proof": proof},
                 "at": now} for cid in inserted])
        opted_in += len(inserted)
        # A contact another transaction opted in or out meanwhile counts as it now stands.
        already += len(fresh) - len(inserted)
    return ImportedConsent(opted_in, already, kept_out)
