"""Templates synced from WhatsApp: each of a tenant's WhatsApp Business Accounts listed through Graph, page
by page, and our rows made exactly that listing (``flask templates sync``, the portal's Sync button).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from saas.audit import services as audit
from saas.extensions import db
from saas.messaging.models import MODE_LIVE, PhoneNumber, Template
from saas.messaging.templates.message_templates import (
    NAME,
    QUALITY_SCORES,
    Waba,
    bounded_text,
    components_problem,
    reason_text,
    wabas_for,
)
from saas.tenants.scoping import owned_query

log = logging.getLogger(__name__)

# Paging through a WABA's templates: Meta allows 250 per WABA (more with a verified business).
PAGE_SIZE = 100
MAX_PAGES = 100
LIST_FIELDS = "id,name,language,status,category,components,quality_score,rejected_reason"


@dataclass
class SyncResult:
    added: int = 0
    updated: int = 0
    removed: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.removed} removed"


def sync_templates(graph, tenant, *, actor="system") -> SyncResult:
    """Make the tenant's templates exactly what Meta lists for each of its WABAs. Commits.

    Every page (``paging.next``) of every WABA is read before anything is
    written, so a Graph failure (GraphError, GraphUnavailable) changes
    nothing. Templates Meta no longer lists are removed. Idempotent.
    """
    listings = {waba.waba_id: _list_templates(graph, waba) for waba in wabas_for(tenant)}
    result = SyncResult()
    try:
        for waba_id, listed in listings.items():
            _apply_listing(tenant, waba_id, listed, result)
        if result.added or result.updated or result.removed:
            audit.record(actor, "templates.sync", f"Templates synced from WhatsApp: {result}",
                         tenant_id=tenant.id, added=result.added, updated=result.updated,
                         removed=result.removed)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


def _list_templates(graph, waba: Waba) -> list[dict]:
    url, params = graph.url(waba.waba_id, "message_templates"), {"limit": PAGE_SIZE, "fields": LIST_FIELDS}
    listed: list[dict] = []
    for _ in range(MAX_PAGES):
        page = graph.get(url, waba.token, params)
        data = page.get("data")
        if isinstance(data, list):
            listed.extend(item for item in data if isinstance(item, dict))
        paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
        following = paging.get("next")
        if not isinstance(following, str) or not data:
            return listed
        if graph.owns(following):
            url, params = following, None
        else:
            # Never send the token anywhere but our Graph: continue from the cursor instead.
            after = (paging.get("cursors") or {}).get("after")
            if not after:
                return listed
            url, params = graph.url(waba.waba_id, "message_templates"), {
                "limit": PAGE_SIZE, "fields": LIST_FIELDS, "after": after}
    log.warning("template listing cut at %d pages", MAX_PAGES)
    return listed


def _listed_fields(item: dict) -> dict | None:
    """A listed template as our columns; None for one we cannot store (never from Meta, but bounded anyway)."""
    name, language = item.get("name"), item.get("language")
    if not isinstance(name, str) or not NAME.match(name) or not isinstance(language, str) or len(language) > 15:
        return None
    components = item.get("components") if isinstance(item.get("components"), list) else []
    if components_problem(components):
        components = []
    quality = item.get("quality_score")
    if isinstance(quality, dict):
        quality = quality.get("score")
    return {
        "name": name, "language": language,
        "meta_id": bounded_text(item.get("id"), 64),
        "status": (bounded_text(item.get("status"), 30) or "PENDING").upper(),
        "category": (bounded_text(item.get("category"), 30) or "MARKETING").upper(),
        "components": components,
        "quality_score": quality if quality in QUALITY_SCORES else None,
        "reason": reason_text(item.get("rejected_reason")),
    }


def _apply_listing(tenant, waba_id: str, listed: list[dict], result: SyncResult) -> None:
    existing = {(t.name, t.language): t for t in db.session.scalars(
        owned_query(Template, tenant).where(Template.waba_id == waba_id))}
    seen = set()
    for item in listed:
        fields = _listed_fields(item)
        if fields is None:
            result.skipped += 1
            continue
        key = (fields["name"], fields["language"])
        if key in seen:
            continue
        seen.add(key)
        row = existing.get(key)
        if row is None:
            db.session.add(Template(tenant_id=tenant.id, waba_id=waba_id, **fields))
            result.added += 1
            continue
        changed = False
        for column, value in fields.items():
            if getattr(row, column) != value:
                setattr(row, column, value)
                changed = True
        result.updated += changed
    for key, row in existing.items():
        if key not in seen:
            db.session.delete(row)
            result.removed += 1
    db.session.flush()


def sync_all(graph, *, actor="cli") -> dict[str, SyncResult]:
    """Sync every tenant that has a live number with a WABA; {tenant slug: result}. Commits per tenant."""
    from saas.tenants.models import Tenant

    tenant_ids = db.session.scalars(
        select(PhoneNumber.tenant_id).where(PhoneNumber.mode == MODE_LIVE, PhoneNumber.waba_id.is_not(None))
        .distinct().order_by(PhoneNumber.tenant_id)).all()
    results = {}
    for tenant_id in tenant_ids:
        tenant = db.session.get(Tenant, tenant_id)
        results[tenant.slug] = sync_templates(graph, tenant, actor=actor)
    return results
