"""What the admin console reads and does about tenants: figures, lists, one tenant's page, suspension.

Reads are built for lists of any length: a page of tenants costs the same few
queries whether it holds 1 tenant or 50.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import lazyload

from saas.audit import services as audit
from saas.audit.models import AuditEvent
from saas.billing import entitlements
from saas.billing.catalog import active_plans
from saas.billing.entitlements import FULL_ACCESS
from saas.billing.models import Plan, StripeEvent, Subscription
from saas.billing.pricing import quota
from saas.billing.services import live_stripe_subscription, subscription_for
from saas.extensions import db
from saas.ids import parse_id
from saas.messaging.numbers import numbers_for
from saas.metering.services import current_period, usage_summary
from saas.tenants.models import ROLE_OWNER, TENANT_ACTIVE, TENANT_SUSPENDED, Tenant, User
from saas.timeutil import utcnow

PAGE_SIZE = 50
# A search longer than this is cut: nothing we hold (name 200, slug 80, email 254) needs more to be found.
QUERY_LENGTH = 100
# Bidi embeddings, overrides and isolates, and the implicit marks: they can make a name read as another.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Months per billing interval, to state every price as monthly revenue.
MONTHLY_FACTOR = {"day": 365 / 12, "week": 52 / 12, "month": 1, "year": 1 / 12}


def without_bidi(text) -> str:
    """``text`` with its bidi control characters removed (it is still escaped when shown)."""
    return BIDI_CONTROLS.sub("", "" if text is None else str(text))


def monthly_cents(price_cents: int, interval: str | None) -> int:
    """A recurring price as revenue per month, in whole cents."""
    return round(price_cents * MONTHLY_FACTOR.get(interval or "month", 1))


def page_number(raw) -> int:
    """``?page=`` as a page number: 1 for anything that is not a positive whole number."""
    return parse_id(raw) or 1


@dataclass(frozen=True)
class Page:
    items: list
    number: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.number > 1


def _paged(rows: list, number: int) -> Page:
    return Page(rows[:PAGE_SIZE], number, len(rows) > PAGE_SIZE)


# -- who pays --------------------------------------------------------------------------------

def _grace_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=current_app.config["PAST_DUE_GRACE_DAYS"])


def pays(subscription: Subscription | None, plan: Plan | None, now: datetime) -> bool:
    """Whether this subscription brings in its plan's price: a paid plan, with full access
    (active, trialing) or past due within the grace period (as entitlements grant it)."""
    if subscription is None or plan is None or plan.price_cents <= 0:
        return False
    if subscription.status in FULL_ACCESS:
        return True
    return subscription.status == "past_due" and (
        subscription.past_due_since is None or subscription.past_due_since >= _grace_cutoff(now))


def _paying_clause(now: datetime):
    """``pays`` as SQL over Subscription joined to Plan."""
    return and_(Plan.price_cents > 0, or_(
        Subscription.status.in_(FULL_ACCESS),
        and_(Subscription.status == "past_due",
             or_(Subscription.past_due_since.is_(None), Subscription.past_due_since >= _grace_cutoff(now)))))


@dataclass
class Overview:
    tenants: int = 0
    active: int = 0
    suspended: int = 0
    paying: int = 0
    trialing: int = 0  # of the paying ones: in a trial, so not charged yet
    mrr: dict = field(default_factory=dict)  # currency -> cents a month


def overview(now: datetime | None = None) -> Overview:
    """Counts of tenants and the monthly recurring revenue per currency, in two queries."""
    now = now or utcnow()
    figures = Overview()
    for status, n in db.session.execute(select(Tenant.status, func.count()).group_by(Tenant.status)):
        figures.tenants += n
        if status == TENANT_ACTIVE:
            figures.active += n
        elif status == TENANT_SUSPENDED:
            figures.suspended += n
    mrr: dict[str, int] = defaultdict(int)
    rows = db.session.execute(
        select(Plan.currency, Plan.interval, Subscription.status, func.count(), func.sum(Plan.price_cents))
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(_paying_clause(now))
        .group_by(Plan.currency, Plan.interval, Subscription.status))
    for currency, interval, status, n, total in rows:
        figures.paying += n
        if status == "trialing":
            figures.trialing += n
        mrr[currency] += monthly_cents(total or 0, interval)
    figures.mrr = dict(sorted(mrr.items()))
    return figures


# -- the tenant list ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantRow:
    tenant: Tenant
    owner_email: str | None
    subscription: Subscription | None
    plan: Plan | None
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


def clean_query(raw: str | None) -> str:
    from saas.text import inert

    # Control characters (NUL: PostgreSQL refuses it) and bidi controls match no stored name.
    return inert(raw or "").strip()[:QUERY_LENGTH]


def list_tenants(q: str | None = None, page: int = 1, *, now: datetime | None = None,
                 size: int = PAGE_SIZE) -> Page:
    """A page of tenants, newest first, each with its plan, usage this period and monthly revenue.

    ``q`` matches the name, the slug or the owner's email (part of it, any case).
    Four queries for any page: tenants, usage counters, usage entries, and the
    plans not cached yet.
    """
    now = now or utcnow()
    q = clean_query(q)
    owner_email = (select(User.email).where(User.tenant_id == Tenant.id, User.role == ROLE_OWNER)
                   .order_by(User.id).limit(1).correlate(Tenant).scalar_subquery())
    query = (select(Tenant, Subscription, Plan, owner_email.label("owner_email"))
             .outerjoin(Subscription, Subscription.tenant_id == Tenant.id)
             .outerjoin(Plan, Plan.id == Subscription.plan_id)
             .options(lazyload(Tenant.users), lazyload(Subscription.plan))
             .order_by(Tenant.id.desc()))
    if q:
        query = _search(query, q)
    rows = db.session.execute(query.offset((page - 1) * size).limit(size + 1)).all()
    rows, has_next = rows[:size], len(rows) > size
    rights = {tenant.id: entitlements.for_tenant(tenant, subscription, now=now) for tenant, subscription, _, _ in rows}
    quotas = {tenant_id: quota(held.effective) for tenant_id, held in rights.items()}
    used = current_app.extensions["metering"].used_for(db.session.connection(), {
        tenant.id: (current_period(subscription, now).start, quotas[tenant.id].metrics)
        for tenant, subscription, _, _ in rows})
    items = []
    for tenant, subscription, plan, email in rows:
        paying = pays(subscription, plan, now)
        items.append(TenantRow(
            tenant=tenant, owner_email=email, subscription=subscription, plan=plan,
            effective_plan=rights[tenant.id].effective.name, used=used.get(tenant.id, 0),
            included=quotas[tenant.id].included, unit=quotas[tenant.id].unit,
            revenue_cents=monthly_cents(plan.price_cents, plan.interval) if paying else 0,
            currency=plan.currency if plan is not None else "usd"))
    return Page(items, page, has_next)


# -- one tenant --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantDetail:
    tenant: Tenant
    subscription: Subscription | None
    plan: Plan | None
    paying: bool
    revenue_cents: int
    live_stripe: bool  # Stripe holds a subscription that has not ended: it decides the plan
    usage: object      # metering's UsageSummary
    events: list
    users: list
    numbers: list
    audit: list
    plan_choices: list  # active plans, and the current plan even when archived


EVENTS_SHOWN = 50
AUDIT_SHOWN = 20


def find_tenant(raw_id) -> Tenant | None:
    """The tenant with this id (as typed in a URL), or None."""
    ident = parse_id(raw_id)
    return db.session.get(Tenant, ident) if ident is not None else None


def plan_choices(current: Plan | None) -> list[Plan]:
    """The plans an admin may put a tenant on: the active ones, and the one it holds even if archived."""
    choices = active_plans()
    if current is not None and current not in choices:
        choices.append(current)
    return choices


def current_plan(tenant: Tenant) -> Plan | None:
    subscription = subscription_for(tenant)
    return db.session.get(Plan, subscription.plan_id) if subscription is not None else None


def tenant_detail(tenant: Tenant, *, now: datetime | None = None) -> TenantDetail:
    """Everything the console shows about one tenant; its Stripe events and audit entries only its own."""
    now = now or utcnow()
    subscription = subscription_for(tenant)
    plan = db.session.get(Plan, subscription.plan_id) if subscription is not None else None
    paying = pays(subscription, plan, now)
    events = list(db.session.scalars(
        select(StripeEvent).where(StripeEvent.tenant_id == tenant.id)
        .order_by(StripeEvent.created.desc(), StripeEvent.id.desc()).limit(EVENTS_SHOWN)))
    return TenantDetail(
        tenant=tenant, subscription=subscription, plan=plan, paying=paying,
        revenue_cents=monthly_cents(plan.price_cents, plan.interval) if paying else 0,
        live_stripe=live_stripe_subscription(subscription),
        usage=usage_summary(tenant, subscription), events=events,
        users=sorted(tenant.users, key=lambda u: u.id), numbers=numbers_for(tenant),
        audit=audit.recent(tenant_id=tenant.id, limit=AUDIT_SHOWN), plan_choices=plan_choices(plan))


def set_status(tenant: Tenant, status: str, *, actor) -> bool:
    """Suspend (``"suspended"``) or reactivate (``"active"``) a tenant, with an audit entry. Commits.

    A suspended tenant's API calls are refused (403 tenant_suspended) from the
    next request in this process (the commit empties the access cache) and
    within ACCESS_CACHE_SECONDS elsewhere. Idempotent: returns False, and
    records nothing, when the tenant already has that status.
    """
    if status not in (TENANT_ACTIVE, TENANT_SUSPENDED):
        raise ValueError(f"unknown tenant status {status!r}")
    try:
        locked = db.session.scalar(select(Tenant).where(Tenant.id == tenant.id).with_for_update()
                                   .execution_options(populate_existing=True))
        if locked.status == status:
            db.session.rollback()
            return False
        before, locked.status = locked.status, status
        if status == TENANT_SUSPENDED:
            audit.record(actor, "tenant.suspended", f"Suspended {locked.slug}: its API calls are refused",
                         tenant_id=locked.id, status_from=before)
        else:
            audit.record(actor, "tenant.reactivated", f"Reactivated {locked.slug}: its API calls are served again",
                         tenant_id=locked.id, status_from=before)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return True


# -- the audit log -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditEntry:
    event: AuditEvent
    tenant: Tenant | None


def audit_log(tenant: Tenant | None = None, page: int = 1) -> Page:
    """A page of the audit log, newest first; only ``tenant``'s entries when given."""
    events = audit.recent(tenant_id=tenant.id if tenant is not None else None,
                          limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    ids = {e.tenant_id for e in events if e.tenant_id is not None}
    tenants = {t.id: t for t in db.session.scalars(
        select(Tenant).where(Tenant.id.in_(ids)).options(lazyload(Tenant.users)))} if ids else {}
    return _paged([AuditEntry(e, tenants.get(e.tenant_id)) for e in events], page)
