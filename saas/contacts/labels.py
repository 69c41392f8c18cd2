"""Contacts' labels: reading them for a page of contacts, setting one contact's, and adding or removing
labels on many contacts at once in set-based statements (each contact changed gets a history entry)."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, func, select

from saas.contacts import history
from saas.contacts.models import Contact, ContactLabel
from saas.contacts.values import FieldProblem
from saas.database import among, insert_many
from saas.errors import InvalidRequest
from saas.extensions import db
from saas.ids import parse_id

# The most contacts one bulk change names.
MAX_BULK = 1000


def labels_of(session, tenant_id: int, contact_ids) -> dict[int, list[str]]:
    """{contact id: its labels, sorted} for the given contacts of the tenant (one query)."""
    found: dict[int, list[str]] = defaultdict(list)
    ids = sorted(set(contact_ids))
    if not ids:
        return found
    rows = session.execute(select(ContactLabel.contact_id, ContactLabel.label).where(
        ContactLabel.tenant_id == tenant_id, among(session, ContactLabel.contact_id, ids)).order_by(ContactLabel.label))
    for contact_id, label in rows:
        found[contact_id].append(label)
    return found


def in_use(tenant) -> list[tuple[str, int]]:
    """The tenant's labels with how many contacts carry each, most used first (for filters and pickers)."""
    rows = db.session.execute(select(ContactLabel.label, func.count()).where(ContactLabel.tenant_id == tenant.id)
                              .group_by(ContactLabel.label).order_by(func.count().desc(), ContactLabel.label)
                              .limit(500))
    return [(label, count) for label, count in rows]


def add(conn, tenant_id: int, pairs) -> list[tuple[int, str]]:
    """Add (contact id, label) pairs; the pairs that were new. Labels already there are left as they are."""
    rows = [{"tenant_id": tenant_id, "contact_id": contact_id, "label": label} for contact_id, label in pairs]
    inserted = insert_many(conn, ContactLabel.__table__, rows, returning=("contact_id", "label"),
                           conflict=("contact_id", "label"))
    return [(contact_id, label) for contact_id, label in inserted]


def take_off(conn, tenant_id: int, contact_ids, labels) -> list[tuple[int, str]]:
    """Remove ``labels`` from the contacts; the (contact id, label) pairs that were there."""
    if not contact_ids or not labels:
        return []
    statement = (delete(ContactLabel).where(ContactLabel.tenant_id == tenant_id,
                                            among(conn, ContactLabel.contact_id, sorted(contact_ids)),
                                            ContactLabel.label.in_(sorted(labels)))
                 .returning(ContactLabel.contact_id, ContactLabel.label))
    return [(contact_id, label) for contact_id, label in conn.execute(statement)]


def replace(conn, tenant_id: int, contact_id: int, labels: list[str]) -> tuple[list[str], list[str]]:
    """Make ``labels`` the contact's labels; (added, removed)."""
    current = set(labels_of(conn, tenant_id, [contact_id]).get(contact_id, []))
    removed = sorted(current - set(labels))
    take_off(conn, tenant_id, [contact_id], removed)
    added = [label for _, label in add(conn, tenant_id, [(contact_id, label) for label in labels
                                                         if label not in current])]
    return sorted(added), removed


def bulk(tenant, contact_ids, *, add_labels: list[str], remove_labels: list[str], actor: str,
         source: str) -> dict:
    """Add and remove labels on many of the tenant's contacts at once. Commits.

    Contacts that are not the tenant's are left out (and counted in ``not_found``), as if they did not
    exist. Each contact whose labels changed gets one "labelled" history entry. Returns
    ``{"contacts": n changed, "added": n pairs, "removed": n pairs, "not_found": n}``.
    """
    ids = _checked_ids(contact_ids)
    if set(add_labels) & set(remove_labels):
        raise FieldProblem("remove", "A label cannot be both added and removed.")
    session = db.session
    conn = session.connection()
    owned = set(conn.scalars(select(Contact.id).where(Contact.tenant_id == tenant.id, among(conn, Contact.id, ids))))
    removed = take_off(conn, tenant.id, owned, remove_labels)
    added = add(conn, tenant.id, [(contact_id, label) for contact_id in sorted(owned) for label in add_labels])
    changes: dict[int, dict[str, list[str]]] = defaultdict(lambda: {"added": [], "removed": []})
    for contact_id, label in added:
        changes[contact_id]["added"].append(label)
    for contact_id, label in removed:
        changes[contact_id]["removed"].append(label)
    history.record_many(conn, tenant.id, [(contact_id, "labelled", detail) for contact_id, detail in changes.items()],
                        source=source, actor=actor)
    history.touch(conn, tenant.id, changes.keys())
    session.commit()
    return {"contacts": len(changes), "added": len(added), "removed": len(removed), "not_found": len(ids) - len(owned)}


def _checked_ids(contact_ids) -> list[int]:
    if not isinstance(contact_ids, list) or not contact_ids:
        raise FieldProblem("contact_ids", f"A list of 1 to {MAX_BULK} contact ids.")
    if len(contact_ids) > MAX_BULK:
        raise FieldProblem("contact_ids", f"At most {MAX_BULK} contacts at once.")
    ids = [parse_id(value) if not isinstance(value, bool) and isinstance(value, (int, str)) else None
           for value in contact_ids]
    if any(value is None for value in ids):
        raise InvalidRequest("Some fields are missing or invalid.",
                             details={"contact_ids": ["Each id is a positive whole number."]})
    return sorted(set(ids))

