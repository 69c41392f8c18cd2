"""A tenant's contacts one at a time: create, read, update, and erase (the right to be forgotten).

Every function takes the tenant (a snapshot with ``id``), reads and writes only its rows, commits its own
transaction and writes the contact's history in it. Another tenant's contact id is NotFound, exactly as
an id that names nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from saas.audit import services as audit
from saas.contacts import attributes as attribute_values
from saas.contacts import directory, history, labels as contact_labels, limits
from saas.contacts.models import Consent, Contact, ContactEvent, ContactLabel
from saas.contacts.values import FieldProblem
from saas.errors import ApiError
from saas.extensions import db
from saas.tenants.scoping import get_owned
from saas.timeutil import utcnow


class ContactExists(ApiError):
    status = 409
    code = "contact_exists"
    graph_code = 4091
    message = "A contact with this WhatsApp id exists already."


UNSET = object()


@dataclass(frozen=True)
class ContactInput:
    """A contact's fields as a face read them (each checked by saas.contacts.values); UNSET: not given."""

    wa_id: str | None = None
    user_id: str | None = None
    name: object = UNSET
    attributes: dict | None = None
    labels: list | None = None


def get(tenant, contact_id) -> Contact:
    """The tenant's contact with this id; NotFound for another tenant's, as for none."""
    return get_owned(Contact, contact_id, tenant, what="contact")


def create(tenant, rights, given: ContactInput, *, source: str, actor: str | None) -> Contact:
    """A new contact of the tenant, with its "created" history entry. Commits.

    Raises FieldProblem (400) for a bad field or neither a WhatsApp id nor a user id, ContactExists (409,
    ``details.contact_id`` the existing one) when the tenant has a contact with either, and the plan's
    refusal (402, with the upgrade link) when it stores ``max_contacts`` already.
    """
    if not given.wa_id and not given.user_id:
        raise FieldProblem("wa_id", "A contact needs its WhatsApp id (a phone number) or Meta's user id.")
    session = db.session
    values = attribute_values.changed({}, given.attributes or {}, attribute_values.definitions(tenant.id))
    name = None if given.name is UNSET else given.name
    for attempt in (1, 2):
        _refuse_existing(tenant.id, given)
        limits.ensure_room(session, tenant.id, rights)
        try:
            contact, _ = directory.find_or_create(session, tenant.id, wa_id=given.wa_id, user_id=given.user_id,
                                                  name=name, source=source, actor=actor)
            break
        except IntegrityError:  # made at the same moment by another request or an inbound message: look again
            session.rollback()
            if attempt == 2:
                raise
    contact.attributes = values
    contact_labels.add(session.connection(), tenant.id, [(contact.id, label) for label in given.labels or []])
    session.commit()
    return contact


def _refuse_existing(tenant_id: int, given: ContactInput) -> None:
    existing = directory.find(db.session, tenant_id, wa_id=given.wa_id, user_id=given.user_id)
    if existing is not None:
        db.session.rollback()
        raise ContactExists(details={"contact_id": existing.id})


def update(tenant, contact_id, given: ContactInput, *, source: str, actor: str | None) -> Contact:
    """Change a contact's name, attributes (merged: a key set to None is removed) and labels (replaced,
    when given). Its WhatsApp id is what it is keyed on and does not change. Commits; one "updated" and
    one "labelled" history entry, for what changed. NotFound, or FieldProblem for a bad field."""
    session = db.session
    contact = get(tenant, contact_id)
    changes: dict[str, list] = {}
    if given.name is not UNSET and given.name != contact.name:
        changes["name"] = [contact.name, given.name]
        contact.name = given.name
    if given.attributes is not None:
        before = dict(contact.attributes or {})
        after = attribute_values.changed(before, given.attributes, attribute_values.definitions(tenant.id))
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes[f"attributes.{key}"] = [before.get(key), after.get(key)]
        contact.attributes = after
    if given.labels is not None:
        added, removed = contact_labels.replace(session.connection(), tenant.id, contact.id, given.labels)
        if added or removed:
            history.record(session, tenant.id, contact.id, history.LABELLED, {"added": added, "removed": removed},
                           source=source, actor=actor)
            contact.updated_at = utcnow()
    if changes:
        history.record(session, tenant.id, contact.id, history.UPDATED, {"changes": changes}, source=source,
                       actor=actor)
        contact.updated_at = utcnow()
    session.commit()
    return contact


def erase(tenant, contact_id, *, actor, source: str) -> int:
    """Erase a contact and its personal data: the contact row, its labels, attributes, consent records and
    history. What the tenant was billed for stays as it is (messages, conversations, usage). The tenant's
    audit log records that a contact was erased, by whom, and nothing about the person. Commits; the
    erased contact's id. NotFound for another tenant's contact, as for none."""
    session = db.session
    contact = get(tenant, contact_id)
    erased = contact.id
    for model in (ContactLabel, ContactEvent, Consent):
        session.execute(delete(model).where(model.tenant_id == tenant.id, model.contact_id == erased),
                        execution_options={"synchronize_session": False})
    session.delete(contact)
    audit.record(actor, "contact.erased", f"Erased contact #{erased} with its labels, attributes, consent and "
                 "history (the messages and usage billed stay)", tenant_id=tenant.id, contact_id=erased,
                 source=source)
    session.commit()
    return erased
