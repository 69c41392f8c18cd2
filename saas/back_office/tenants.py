"""The back office's tenants: the list, one tenant's page, suspension and plans by hand.

Reads are built for lists of any length: a page of tenants costs the same few
queries whether it holds 1 tenant or 50. Every answer is plain data
(saas.back_office.records); revenue follows the billing's rights rule
(saas.back_office.revenue).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import lazyload

from saas.audit import services as audit
from saas.back_office.records import (
    PAGE_SIZE, AuditFacts, NumberFacts, Page, PlanFacts, StripeEventFacts, SubscriptionFacts, TenantFacts, UserFacts,
    maybe,
)
from saas.back_office.revenue import Overview, monthly_revenue, overview, pays
from saas.billing import entitlements
from saas.billing.catalog import active_plans
from saas.billing.models import Plan, StripeEvent, Subscription
from saas.billing.pricing import quota
from saas.billing.services import assign_plan as assign_billing_plan
from saas.billing.services import live_stripe_subscription
from saas.billing.standing import PastDueGrace
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.metering.services import current_period, usage_summary
from saas.tenants.models import ROLE_OWNER, TENANT_ACTIVE, TENANT_SUSPENDED, Tenant, User
from saas.text import inert

# A search longer than this is cut: nothing we hold (name 200, slug 80, email 254) needs more to be found.
QUERY_LENGTH = 100
NEWEST_SHOWN = 10
EVENTS_SHOWN = 50
AUDIT_SHOWN = 20


def clean_query(raw: str | None) -> str:
    """A search as typed, made one that can match: control characters (NUL: PostgreSQL refuses it) and bidi
    controls match no stored name; cut to QUERY_LENGTH."""
    return inert(raw or "").strip()[:QUERY_LENGTH]


def find_tenant(session, tenant_id: int | None) -> TenantFacts | None:
    """The tenant with this id, or None."""
    return maybe(TenantFacts, session.get(Tenant, tenant_id)) if tenant_id is not None else None


# -- the tenant list ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantRow:
    tenant: TenantFacts
    owner_email: str | None
    subscription: SubscriptionFacts | None
    plan: PlanFacts | None
    effective_plan: str  # the plan whose rights apply now (free when a paid one lapsed)
    used: int
    included: int
    revenue_cents: int
    currency: str
    unit: str = "conversations"  # what used and included count (saas.billing.pricing)


def _search(query, q: str):
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    owner_matches = exists(select(User.id).where(
        User.tenant_id == Tenant.id, User.role == ROLE_OWNER, User.email.ilike(pattern, escape="\\")))
    return query.where(or_(Tenant.name.ilike(pattern, escape="\\"), Tenant.slug.ilike(pattern, escape="\\"),
                           owner_matches))


def _tenant_rows(session, q: str, page: int, size: int) -> list:
    """(tenant, subscription, plan, owner email) of a page, one more than ``size`` to tell a next page."""
    owner_email = (select(User.email).where(User.tenant_id == Tenant.id, User.role == ROLE_OWNER)
                   .order_by(User.id).limit(1).correlate(Tenant).scalar_subquery())
    query = (select(Tenant, Subscription, Plan, owner_email.label("owner_email"))
             .outerjoin(Subscription, Subscription.tenant_id == Tenant.id)
             .outerjoin(Plan, Plan.id == Subscription.plan_id)
             .options(lazyload(Tenant.users), lazyload(Subscription.plan))
             .order_by(Tenant.id.desc()))
    if q:
        query = _search(query, q)
    return session.execute(query.offset((page - 1) * size).limit(size + 1)).all()


def list_tenants(session, metering, q: str | None = None, page: int = 1, *, now: datetime, grace: PastDueGrace,
                 size: int = PAGE_SIZE) -> Page:
    """A page of tenants, newest first, each with its plan, usage this period and monthly revenue.

    ``q`` matches the name, the slug or the owner's email (part of it, any case).
    Four queries for any page: tenants, usage counters, usage entries, and the
    plans not cached yet. ``metering`` is the metering port.
    """
    rows = _tenant_rows(session, clean_query(q), page, size)
    rows, has_next = rows[:size], len(rows) > size
    rights = {tenant.id: entitlements.for_tenant(tenant, subscription, now=now) for tenant, subscription, _, _ in rows}
    quotas = {tenant_id: quota(held.effective) for tenant_id, held in rights.items()}
    used = metering.used_for(session.connection(), {
        tenant.id: (current_period(subscription, now).start, quotas[tenant.id].metrics)
        for tenant, subscription, _, _ in rows})
    items = []
    for tenant, subscription, plan, email in rows:
        items.append(TenantRow(
            tenant=TenantFacts.of(tenant), owner_email=email, subscription=maybe(SubscriptionFacts, subscription),
            plan=maybe(PlanFacts, plan), effective_plan=rights[tenant.id].effective.name,
            used=used.get(tenant.id, 0), included=quotas[tenant.id].included, unit=quotas[tenant.id].unit,
            revenue_cents=monthly_revenue(subscription, plan, now, grace),
            currency=plan.currency if plan is not None else "usd"))
    return Page(items, page, has_next)


@dataclass(frozen=True)
class Dashboard:
    figures: Overview
    newest: Page
    plans: list  # PlanFacts on sale, in the catalogue's order


def dashboard(session, metering, *, now: datetime, grace: PastDueGrace) -> Dashboard:
    """The console's front page: the figures, the newest tenants, the plans on sale."""
    return Dashboard(figures=overview(session, now=now, grace=grace),
                     newest=list_tenants(session, metering, now=now, grace=grace, size=NEWEST_SHOWN),
                     plans=[PlanFacts.of(plan) for plan in active_plans()])


# -- one tenant --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantDetail:
    tenant: TenantFacts
    subscription: SubscriptionFacts | None
    plan: PlanFacts | None
    paying: bool
    revenue_cents: int
    live_stripe: bool  # Stripe holds a subscription that has not ended: it decides the plan
    usage: object      # metering's UsageSummary
    events: list
    users: list
    numbers: list
    audit: list
    plan_choices: list  # active plans, and the current plan even when archived


def _choices(current: Plan | None) -> list[PlanFacts]:
    choices = active_plans()
    if current is not None and current not in choices:
        choices.append(current)
    return [PlanFacts.of(plan) for plan in choices]


def plan_choices(session, tenant_id: int) -> list[PlanFacts]:
    """The plans an admin may put a tenant on: the active ones, and the one it holds even if archived."""
    return _choices(session.scalar(select(Plan).join(Subscription, Subscription.plan_id == Plan.id)
                                   .where(Subscription.tenant_id == tenant_id)))


def _stripe_events(session, tenant_id: int) -> list[StripeEventFacts]:
    return [StripeEventFacts.of(event) for event in session.scalars(
        select(StripeEvent).where(StripeEvent.tenant_id == tenant_id)
        .order_by(StripeEvent.created.desc(), StripeEvent.id.desc()).limit(EVENTS_SHOWN))]


def tenant_detail(session, tenant_id: int, *, now: datetime, grace: PastDueGrace) -> TenantDetail | None:
    """Everything the console shows about one tenant (None: no such tenant); only its own events and audit."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    subscription = session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
    plan = session.get(Plan, subscription.plan_id) if subscription is not None else None
    return TenantDetail(
        tenant=TenantFacts.of(tenant), subscription=maybe(SubscriptionFacts, subscription),
        plan=maybe(PlanFacts, plan), paying=pays(subscription, plan, now, grace),
        revenue_cents=monthly_revenue(subscription, plan, now, grace),
        live_stripe=live_stripe_subscription(subscription),
        usage=usage_summary(tenant, subscription), events=_stripe_events(session, tenant_id),
        users=[UserFacts.of(user) for user in sorted(tenant.users, key=lambda u: u.id)],
        numbers=[NumberFacts.of(number) for number in numbers_for(tenant)],
        audit=[AuditFacts.of(event) for event in audit.recent(tenant_id=tenant_id, limit=AUDIT_SHOWN)],
        plan_choices=_choices(plan))


# -- what the console does ---------------------------------------------------------------------

@dataclass(frozen=True)
class StatusChange:
    tenant: TenantFacts  # as it is now
    changed: bool        # False: it already had that status


def set_status(session, tenant_id: int, status: str, *, actor) -> StatusChange | None:
    """Suspend (``"suspended"``) or reactivate (``"active"``) a tenant, with an audit entry. Commits.

    A suspended tenant's API calls are refused (403 tenant_suspended) from the
    next request in this process (the commit empties the access cache) and
    within ACCESS_CACHE_SECONDS elsewhere. Idempotent: records nothing, and
    says unchanged, when the tenant already has that status. None: no such tenant.
    """
    if status not in (TENANT_ACTIVE, TENANT_SUSPENDED):
        raise ValueError(f"unknown tenant status {status!r}")
    try:
        locked = session.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update()
                                .execution_options(populate_existing=True))
        if locked is None or locked.status == status:
            unchanged = None if locked is None else StatusChange(TenantFacts.of(locked), False)
            session.rollback()
            return unchanged
        before, locked.status = locked.status, status
        if status == TENANT_SUSPENDED:
            audit.record(actor, "tenant.suspended", f"Suspended {locked.slug}: its API calls are refused",
                         tenant_id=locked.id, status_from=before)
        else:
            audit.record(actor, "tenant.reactivated", f"Reactivated {locked.slug}: its API calls are served again",
                         tenant_id=locked.id, status_from=before)
        change = StatusChange(TenantFacts.of(locked), True)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return change


def assign_plan(session, tenant_id: int, plan_code: str, *, actor, stripe_configured: bool) -> PlanFacts | None:
    """Put the tenant on ``plan_code`` by hand (saas.billing.services.assign_plan: its rules, its audit entry).
    Commits. Returns the plan it holds now; None: no such tenant. Raises UnknownPlan, PlanChangeRefused."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    subscription = assign_billing_plan(tenant, plan_code, actor=actor, stripe_configured=stripe_configured)
    return PlanFacts.of(session.get(Plan, subscription.plan_id))
