"""The console's analytics: every tenant's figures over a date range from the daily roll-ups
(saas.analytics), with what each brings in beside what Meta charges for its messages.

Revenue is what the billing tables hold for the tenant's current period: the plan's monthly price while it
pays (saas.back_office.revenue) plus the overage so far (units past what the plan includes, at its overage
price). Meta's cost is the range's. A few queries for any number of tenants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from saas.analytics.models import AMOUNTS, COUNTS, DailyFigures
from saas.analytics.ranges import DayRange
from saas.analytics.reading import Figures
from saas.back_office.revenue import monthly_revenue
from saas.billing import entitlements
from saas.billing.models import Plan, Subscription
from saas.billing.pricing import quota
from saas.billing.standing import PastDueGrace
from saas.metering.services import current_period
from saas.tenants.models import Tenant

# The busiest tenants shown (by messages sent in the range).
SHOWN = 200


@dataclass
class TenantFigures:
    tenant_id: int
    name: str
    figures: Figures
    used: int = 0
    included: int = 0
    revenue_cents: Decimal = Decimal(0)
    currency: str = "usd"


@dataclass
class PlatformReport:
    range: DayRange
    tenants: list                       # TenantFigures, busiest first
    totals: Figures = field(default_factory=Figures)
    revenue_cents: dict = field(default_factory=dict)  # currency -> cents


def _by_tenant(session, days: DayRange) -> dict[int, Figures]:
    rows = session.execute(
        select(DailyFigures.tenant_id, DailyFigures.currency,
               *(func.sum(getattr(DailyFigures, name)) for name in (*COUNTS, *AMOUNTS)))
        .where(DailyFigures.day >= days.start, DailyFigures.day <= days.end)
        .group_by(DailyFigures.tenant_id, DailyFigures.currency))
    found: dict[int, Figures] = {}
    for tenant_id, currency, *sums in rows:
        found.setdefault(tenant_id, Figures()).add(currency, sums)
    return found


def _revenue(subscription, plan, used: int, included: int, hard_cap: bool, now, grace) -> Decimal:
    price = Decimal(monthly_revenue(subscription, plan, now, grace))
    if plan is None or hard_cap or plan.overage_cents is None:
        return price
    return price + max(used - included, 0) * plan.overage_cents


def platform_report(session, metering, days: DayRange, *, now: datetime, grace: PastDueGrace) -> PlatformReport:
    """Every tenant with messages in ``days``, busiest first (at most SHOWN), with its revenue this period."""
    figures = _by_tenant(session, days)
    busiest = sorted(figures, key=lambda tenant_id: (-figures[tenant_id].sent, tenant_id))[:SHOWN]
    report = PlatformReport(days, [])
    for tenant_figures in figures.values():
        report.totals.merge(tenant_figures)
    if not busiest:
        return report
    rows = session.execute(select(Tenant, Subscription, Plan)
                           .outerjoin(Subscription, Subscription.tenant_id == Tenant.id)
                           .outerjoin(Plan, Plan.id == Subscription.plan_id)
                           .where(Tenant.id.in_(busiest))).all()
    quotas = {tenant.id: quota(entitlements.for_tenant(tenant, subscription, now=now).effective)
              for tenant, subscription, _ in rows}
    used = metering.used_for(session.connection(), {
        tenant.id: (current_period(subscription, now).start, quotas[tenant.id].metrics)
        for tenant, subscription, _ in rows})
    for tenant, subscription, plan in rows:
        terms = quotas[tenant.id]
        line = TenantFigures(tenant.id, tenant.name, figures[tenant.id], used.get(tenant.id, 0), terms.included,
                             currency=plan.currency if plan is not None else "usd")
        line.revenue_cents = _revenue(subscription, plan, line.used, terms.included, terms.hard_cap, now, grace)
        report.revenue_cents[line.currency] = report.revenue_cents.get(line.currency, 0) + line.revenue_cents
        report.tenants.append(line)
    report.tenants.sort(key=lambda line: (-line.figures.sent, line.tenant_id))
    return report
