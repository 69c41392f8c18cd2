"""A contact's history (ContactEvent rows): what changed, when, from where and by whom.

Every change to a contact writes one entry in the transaction of the change; many at once are written in
one set-based statement. The history is the contact's own: erasing the contact erases it.
"""
from __future__ import annotations

from sqlalchemy import select, update

from saas.contacts.models import Contact, ContactEvent
from saas.database import among, insert_many
from saas.timeutil import utcnow

ACTOR_LENGTH = 200

# What each kind of entry records in ``detail``.
CREATED = "created"        # {} or {"import_id": n}
UPDATED = "updated"        # {"changes": {"name": [old, new], "attributes.city": [old, new]}}
LABELLED = "labelled"      # {"added": [...], "removed": [...]}
IMPORTED = "imported"      # {"import_id": n, "changes": {...}}: an import merged a row into the contact


def record(session, tenant_id: int, contact_id: int, kind: str, detail: dict | None = None, *,
           source: str | None, actor: str | None) -> None:
    """One entry, added to ``session`` (flushed with it)."""
    session.add(ContactEvent(tenant_id=tenant_id, contact_id=contact_id, kind=kind, source=source,
                             actor=_actor(actor), detail=detail or {}, at=utcnow()))


def record_many(conn, tenant_id: int, entries, *, source: str | None, actor: str | None) -> int:
    """Entries (contact id, kind, detail) in one statement on ``conn``; how many."""
    now, actor = utcnow(), _actor(actor)
    rows = [{"tenant_id": tenant_id, "contact_id": contact_id, "kind": kind, "source": source, "actor": actor,
             "detail": detail or {}, "at": now} for contact_id, kind, detail in entries]
    insert_many(conn, ContactEvent.__table__, rows)
    return len(rows)


def touch(conn, tenant_id: int, contact_ids) -> None:
    """Mark the contacts changed now (their ``updated_at``)."""
    ids = sorted(contact_ids)
    if ids:
        conn.execute(update(Contact).where(Contact.tenant_id == tenant_id, among(conn, Contact.id, ids))
                     .values(updated_at=utcnow()))


def entries(session, tenant_id: int, contact_id: int, *, limit: int = 100, before_id: int | None = None):
    """The contact's history, newest first; ``before_id`` continues from a page's last entry."""
    query = select(ContactEvent).where(ContactEvent.tenant_id == tenant_id, ContactEvent.contact_id == contact_id)
    if before_id is not None:
        query = query.where(ContactEvent.id < before_id)
    return list(session.scalars(query.order_by(ContactEvent.id.desc()).limit(limit)))


def _actor(actor: str | None) -> str | None:
    return actor[:ACTOR_LENGTH] if actor else None
