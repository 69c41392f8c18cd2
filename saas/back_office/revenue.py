"""Who pays and how much a month: the console's revenue figures, by the billing's own rights rule.

A subscription brings in its plan's price while the plan's own rights apply
(saas.billing.standing: active, trialing, or past due within the grace), so
the revenue shown and the rights granted never disagree.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select

from saas.billing.models import Plan, Subscription
from saas.billing.standing import PastDueGrace, subscribed_rights_apply, subscribed_rights_apply_sql
from saas.tenants.models import TENANT_ACTIVE, TENANT_SUSPENDED, Tenant

# Months per billing interval, to state every price as monthly revenue.
MONTHLY_FACTOR = {"day": 365 / 12, "week": 52 / 12, "month": 1, "year": 1 / 12}


def monthly_cents(price_cents: int, interval: str | None) -> int:
    """A recurring price as revenue per month, in whole cents."""
    return round(price_cents * MONTHLY_FACTOR.get(interval or "month", 1))


def pays(subscription, plan, now: datetime, grace: PastDueGrace) -> bool:
    """Whether this subscription brings in its plan's price: a paid plan whose own rights apply at ``now``."""
    if subscription is None or plan is None or plan.price_cents <= 0:
        return False
    return subscribed_rights_apply(subscription, now, grace)


def monthly_revenue(subscription, plan, now: datetime, grace: PastDueGrace) -> int:
    """What ``subscription`` brings in a month, in its plan's currency (0 when it does not pay)."""
    return monthly_cents(plan.price_cents, plan.interval) if pays(subscription, plan, now, grace) else 0


def paying_clause(now: datetime, grace: PastDueGrace):
    """``pays`` as SQL over Subscription joined to Plan."""
    return and_(Plan.price_cents > 0, subscribed_rights_apply_sql(now, grace))


@dataclass
class Overview:
    tenants: int = 0
    active: int = 0
    suspended: int = 0
    paying: int = 0
    trialing: int = 0  # of the paying ones: in a trial, so not charged yet
    mrr: dict = field(default_factory=dict)  # currency -> cents a month


def overview(session, *, now: datetime, grace: PastDueGrace) -> Overview:
    """Counts of tenants and the monthly recurring revenue per currency, in two queries."""
    figures = Overview()
    for status, n in session.execute(select(Tenant.status, func.count()).group_by(Tenant.status)):
        figures.tenants += n
        if status == TENANT_ACTIVE:
            figures.active += n
        elif status == TENANT_SUSPENDED:
            figures.suspended += n
    mrr: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(Plan.currency, Plan.interval, Subscription.status, func.count(), func.sum(Plan.price_cents))
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(paying_clause(now, grace))
        .group_by(Plan.currency, Plan.interval, Subscription.status))
    for currency, interval, status, n, total in rows:
        figures.paying += n
        if status == "trialing":
            figures.trialing += n
        mrr[currency] += monthly_cents(total or 0, interval)
    figures.mrr = dict(sorted(mrr.items()))
    return figures
