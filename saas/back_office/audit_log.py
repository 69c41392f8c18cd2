"""The audit log as the console pages through it: entries newest first, each with the tenant it is about."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import lazyload

from saas.audit import services as audit
from saas.back_office.records import PAGE_SIZE, AuditFacts, Page, TenantFacts, paged
from saas.tenants.models import Tenant


@dataclass(frozen=True)
class AuditEntry:
    event: AuditFacts
    tenant: TenantFacts | None


def audit_log(session, tenant_id: int | None = None, page: int = 1) -> Page:
    """A page of the audit log, newest first; only the entries about ``tenant_id`` when given. Two queries."""
    events = audit.recent(tenant_id=tenant_id, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    ids = {e.tenant_id for e in events if e.tenant_id is not None}
    tenants = {t.id: TenantFacts.of(t) for t in session.scalars(
        select(Tenant).where(Tenant.id.in_(ids)).options(lazyload(Tenant.users)))} if ids else {}
    return paged([AuditEntry(AuditFacts.of(e), tenants.get(e.tenant_id)) for e in events], page)
