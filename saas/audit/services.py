"""The audit log: record an action in the caller's transaction, list them back."""
from __future__ import annotations

from sqlalchemy import select

from saas.audit.models import AuditEvent
from saas.extensions import db

SUMMARY_LENGTH = 500


def actor_of(user) -> tuple[int | None, str]:
    """(user id, name) of whoever acts: a logged-in user, or a name like "cli" or "stripe"."""
    if isinstance(user, str):
        return None, user
    if user is None or not getattr(user, "is_authenticated", False):
        return None, "anonymous"
    return user.id, user.email


def record(actor, action: str, summary: str, *, tenant_id: int | None = None, **details) -> AuditEvent:
    """Add an entry to the session (flushed, not committed): it commits with the change it describes."""
    user_id, name = actor_of(actor)
    if len(summary) > SUMMARY_LENGTH:
        summary = summary[: SUMMARY_LENGTH - 1] + "…"
    event = AuditEvent(tenant_id=tenant_id, actor_user_id=user_id, actor=name[:254], action=action,
                       summary=summary, details=details)
    db.session.add(event)
    db.session.flush()
    return event


def recent(*, tenant_id: int | None = None, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    """The newest entries first (skipping ``offset``); only ``tenant_id``'s when given."""
    query = (select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
             .offset(offset).limit(limit))
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    return list(db.session.scalars(query))
