"""Subscriptions as this app holds them (Stripe's copy arrives by webhook)."""
from __future__ import annotations

from sqlalchemy import select

from saas.billing.catalog import plan_by_code
from saas.billing.models import Subscription
from saas.extensions import db
from saas.tenants.models import Tenant


class UnknownPlan(ValueError):
    pass


def start_subscription(tenant: Tenant, plan_code: str = "free") -> Subscription:
    """Give a new tenant its first subscription. Flushes; the caller commits.

    Raises UnknownPlan when the plan does not exist (``flask seed`` makes them).
    """
    plan = plan_by_code(plan_code)
    if plan is None:
        raise UnknownPlan(f"No plan with code {plan_code!r}; run 'flask seed' first.")
    subscription = Subscription(tenant_id=tenant.id, plan_id=plan.id, status="active")
    db.session.add(subscription)
    db.session.flush()
    return subscription


def subscription_for(tenant: Tenant) -> Subscription | None:
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))


def assign_plan(tenant: Tenant, plan_code: str) -> Subscription:
    """Put ``tenant`` on a plan by hand (support work, or billing not configured). Commits."""
    plan = plan_by_code(plan_code)
    if plan is None:
        raise UnknownPlan(f"No plan with code {plan_code!r}.")
    subscription = subscription_for(tenant)
    if subscription is None:
        subscription = Subscription(tenant_id=tenant.id, plan_id=plan.id, status="active")
        db.session.add(subscription)
    subscription.plan_id = plan.id
    subscription.plan = plan
    db.session.commit()
    return subscription
