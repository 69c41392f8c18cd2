"""The one road to a tenant-owned row: always by id *and* tenant."""
from __future__ import annotations

from sqlalchemy import select

from saas.errors import NotFound
from saas.extensions import db
from saas.ids import parse_id


def get_owned(model, ident, tenant, *, what: str | None = None):
    """The ``model`` row with this id owned by ``tenant``.

    Raises NotFound both when it does not exist and when another tenant owns
    it, so ids reveal nothing across tenants.
    """
    ident = parse_id(ident)
    if ident is None:
        raise NotFound(f"No such {what or model.__name__.lower()}.")
    row = db.session.scalar(select(model).where(model.id == ident, model.tenant_id == tenant.id))
    if row is None:
        raise NotFound(f"No such {what or model.__name__.lower()}.")
    return row


def owned_query(model, tenant):
    """A select of ``model`` already narrowed to ``tenant``."""
    return select(model).where(model.tenant_id == tenant.id)
