"""Our billable counts per tenant and category against the ``pricing`` objects Meta sent, over the
messages sent in a span of days (``flask usage reconcile``, and daily in every process's housekeeping)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from saas.costs.models import MessageCost
from saas.tenants.models import Tenant
from saas.timeutil import utcnow

log = logging.getLogger(__name__)
# How often each process's housekeeping runs the reconciliation, in seconds.
DAILY = 86400.0


@dataclass(frozen=True)
class Difference:
    tenant_id: int
    tenant_name: str
    category: str
    ours: int
    meta: int

    def __str__(self) -> str:
        return (f"tenant {self.tenant_id} ({self.tenant_name}): {self.category}: {self.ours} billable by our "
                f"count, {self.meta} by Meta's pricing")


def _counts(session, category_column, billable_column, start: datetime, end: datetime, tenant_id):
    query = (select(MessageCost.tenant_id, category_column, func.count())
             .where(MessageCost.sent_at >= start, MessageCost.sent_at < end, billable_column.is_(True))
             .group_by(MessageCost.tenant_id, category_column))
    if tenant_id is not None:
        query = query.where(MessageCost.tenant_id == tenant_id)
    return {(tenant, category or "(none)"): count for tenant, category, count in session.execute(query)}


def reconcile(session, first: date, last: date, *, tenant_id: int | None = None) -> list[Difference]:
    """Differences between the messages we count billable (the estimate) and those Meta's pricing objects
    say are billable, per tenant and category, for messages sent from ``first`` to ``last`` (days, UTC,
    both included). A message Meta has sent no pricing for counts on our side only. Read-only."""
    start, end = datetime.combine(first, time.min), datetime.combine(last + timedelta(days=1), time.min)
    try:
        ours = _counts(session, MessageCost.category, MessageCost.estimated_billable, start, end, tenant_id)
        meta = _counts(session, MessageCost.confirmed_category, MessageCost.confirmed_billable, start, end, tenant_id)
        keys = sorted(key for key in set(ours) | set(meta) if ours.get(key, 0) != meta.get(key, 0))
        tenants = sorted({tenant for tenant, _ in keys})
        names = (dict(session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(tenants))).all())
                 if keys else {})
    finally:
        session.rollback()
    return [Difference(tenant, names.get(tenant, "?"), category, ours.get((tenant, category), 0),
                       meta.get((tenant, category), 0)) for tenant, category in keys]


def reconcile_yesterday(session, today: date | None = None) -> list[Difference]:
    """The daily run: yesterday's messages (UTC); differences are logged as warnings."""
    today = today or utcnow().date()
    differences = reconcile(session, today - timedelta(days=1), today - timedelta(days=1))
    for difference in differences:
        log.warning("Meta cost reconciliation: %s", difference)
    return differences
