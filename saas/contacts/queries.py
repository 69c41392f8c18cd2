"""Finding a tenant's contacts: filters (label, search, country, an attribute held, created since) and keyset
pages on the id, newest first, as every list of the API pages (``before`` the last id seen)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select

from saas.contacts import attributes
from saas.contacts.models import Contact, ContactLabel
from saas.extensions import db

SEARCH_LENGTH = 100
PHONE_NOISE = re.compile(r"[\s\-.()+]")


@dataclass(frozen=True)
class Filters:
    """What a list asks for; every field optional, all given must hold. Values are checked by the faces
    (saas.api.contacts, the portal's form): ``label`` as stored (lowercase), ``country`` an ISO 3166 code."""

    label: str | None = None
    search: str | None = None          # a name containing it (any case), or a number starting with its digits
    country: str | None = None
    has_attribute: str | None = None   # an attribute key the contact holds a value for
    created_since: datetime | None = None

    def as_query(self) -> dict:
        """The filters as query-string arguments (the next page's link keeps them)."""
        values = {"label": self.label, "q": self.search, "country": self.country,
                  "has_attribute": self.has_attribute,
                  "created_since": self.created_since.isoformat() + "Z" if self.created_since else None}
        return {name: value for name, value in values.items() if value}


def filtered(tenant_id: int, filters: Filters, dialect: str):
    """A select of the tenant's contacts that pass ``filters`` (``dialect``: the database's, for JSON)."""
    query = select(Contact).where(Contact.tenant_id == tenant_id)
    if filters.label:
        query = query.where(exists().where(ContactLabel.tenant_id == tenant_id, ContactLabel.contact_id == Contact.id,
                                           ContactLabel.label == filters.label))
    if filters.search:
        query = query.where(_matches(filters.search))
    if filters.country:
        query = query.where(Contact.country == filters.country)
    if filters.has_attribute:
        query = query.where(attributes.holds(filters.has_attribute, dialect))
    if filters.created_since:
        query = query.where(Contact.created_at >= filters.created_since)
    return query


def _matches(search: str):
    text = " ".join(search.split())
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    conditions = [Contact.name.ilike(f"%{escaped}%", escape="\\")]
    digits = PHONE_NOISE.sub("", text)
    if digits.isascii() and digits.isdigit():
        conditions.append(Contact.wa_id.like(f"{digits}%"))
    return or_(*conditions)


def page(tenant, filters: Filters, *, limit: int, before: int | None = None) -> tuple[list[Contact], bool]:
    """One page of the tenant's contacts passing ``filters``, newest first, and whether more follow."""
    query = filtered(tenant.id, filters, db.session.get_bind().dialect.name)
    if before is not None:
        query = query.where(Contact.id < before)
    rows = list(db.session.scalars(query.order_by(Contact.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def in_batches(session, tenant_id: int, filters: Filters, *, size: int = 1000):
    """Every contact passing ``filters``, oldest first, ``size`` at a time (lists of rows): a keyset walk,
    so an export of any size holds one batch at a time."""
    after, dialect = 0, session.get_bind().dialect.name
    while True:
        batch = list(session.scalars(filtered(tenant_id, filters, dialect).where(Contact.id > after)
                                     .order_by(Contact.id).limit(size)))
        if not batch:
            return
        yield batch
        after = batch[-1].id
        for row in batch:  # not kept in the session's identity map past their batch
            session.expunge(row)
