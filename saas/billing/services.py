"""Subscriptions as this app holds them (Stripe's copy arrives by webhook)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from saas.audit import services as audit
from saas.billing.catalog import plan_by_code, plan_for_price
from saas.billing.models import SUBSCRIPTION_STATUSES, Plan, Subscription
from saas.billing.stripe_fields import check_subscription
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp

# A subscription in one of these states no longer stands for anything: when the
# tenant already holds another subscription, news of this one is history.
ENDED = ("canceled", "incomplete_expired")


class UnknownPlan(ValueError):
    pass


def start_subscription(tenant: Tenant, plan_code: str = "free") -> Subscription:
    """Give a new tenant its first subscription. Flushes; the caller commits.

    Raises UnknownPlan when the plan does not exist (``flask seed`` makes them) or is
    archived (archived plans keep their subscribers but take no new ones).
    """
    plan = plan_by_code(plan_code)
    if plan is None:
        raise UnknownPlan(f"No plan with code {plan_code!r}; run 'flask seed' first.")
    if not plan.active:
        raise UnknownPlan(f"Plan {plan_code!r} is archived: it takes no new subscribers.")
    subscription = Subscription(tenant_id=tenant.id, plan_id=plan.id, status="active")
    db.session.add(subscription)
    db.session.flush()
    return subscription


def subscription_for(tenant: Tenant) -> Subscription | None:
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))


class PlanChangeRefused(ValueError):
    """A plan change by hand that is not allowed: an archived plan, or one Stripe decides."""


class PlanFromStripe(PlanChangeRefused):
    """The tenant's plan comes from a live Stripe subscription: change it there (or force)."""


def live_stripe_subscription(subscription: Subscription | None) -> bool:
    """Whether Stripe holds a subscription for this row that has not ended (so Stripe decides its plan)."""
    return bool(subscription is not None and subscription.stripe_subscription_id
                and subscription.status not in ENDED)


def assign_plan(tenant: Tenant, plan_code: str, *, actor="system", force: bool = False,
                stripe_configured: bool | None = None) -> Subscription:
    """Put ``tenant`` on a plan by hand (support work, or billing not configured). Commits.

    Allowed when Stripe is not configured or the tenant has no live Stripe
    subscription; otherwise Stripe's copy decides the plan (a plan set here would
    be neither billed nor kept by the next event), so it raises PlanFromStripe
    (a PlanChangeRefused) unless ``force``, which is recorded. An ended Stripe subscription is let go:
    the tenant holds the plan, active, with no Stripe ids. Raises UnknownPlan for
    no such plan, PlanChangeRefused for an archived plan (unless it is the
    tenant's current one). The audit entry (``actor``: a User or a name) commits
    with the change; assigning what the tenant already holds changes nothing
    and records nothing.
    """
    if stripe_configured is None:
        from saas.billing import stripe_client

        stripe_configured = stripe_client.configured()
    plan = plan_by_code(plan_code)
    if plan is None:
        raise UnknownPlan(f"No plan with code {plan_code!r}.")
    try:
        subscription = _locked_subscription(tenant)
        live = live_stripe_subscription(subscription)
        _refuse_plan_change(plan, subscription, overriding=live and stripe_configured, force=force)
        if subscription is None:
            subscription = Subscription(tenant_id=tenant.id, plan_id=plan.id, status="active")
            db.session.add(subscription)
            before_plan, before_status = None, None
        else:
            before_plan, before_status = db.session.get(Plan, subscription.plan_id), subscription.status
        subscription.plan_id = plan.id
        subscription.plan = plan
        if not live:
            _let_stripe_go(subscription)
        if before_plan is not None and (before_plan.id, before_status) == (plan.id, subscription.status):
            db.session.rollback()
            return subscription_for(tenant)
        summary, details = _assignment_entry(before_plan, before_status, subscription,
                                             overriding=live and stripe_configured)
        audit.record(actor, "plan.assigned", summary, tenant_id=tenant.id, **details)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return subscription


def _refuse_plan_change(plan: Plan, subscription: Subscription | None, *, overriding: bool, force: bool) -> None:
    """Raise PlanChangeRefused for an archived plan the tenant does not hold, PlanFromStripe when a live
    Stripe subscription decides the plan (``overriding``) and the change is not forced."""
    if not plan.active and (subscription is None or subscription.plan_id != plan.id):
        raise PlanChangeRefused(f"Plan {plan.code!r} is archived: nobody new may be put on it.")
    if overriding and not force:
        raise PlanFromStripe(
            f"This tenant's plan comes from its Stripe subscription {subscription.stripe_subscription_id} "
            f"({subscription.status}); change it in Stripe, or let the tenant change it from its billing page.")


def _let_stripe_go(subscription: Subscription) -> None:
    """Nothing in Stripe speaks for this tenant any more: the plan given by hand is the whole truth."""
    subscription.status = "active"
    subscription.past_due_since = None
    subscription.cancel_at_period_end = False
    subscription.trial_end = None
    subscription.stripe_subscription_id = None
    subscription.stripe_price_id = None
    subscription.stripe_metered_item_id = None
    # Its usage period is the calendar month again (metering.current_period), not a stale Stripe one.
    subscription.current_period_start = None
    subscription.current_period_end = None


def _assignment_entry(before_plan: Plan | None, before_status: str | None, subscription: Subscription, *,
                      overriding: bool) -> tuple[str, dict]:
    """The audit entry's summary and details for a plan set by hand."""
    plan = subscription.plan
    summary = f"Plan set by hand: {before_plan.name if before_plan else 'none'} → {plan.name}"
    if before_status not in (None, subscription.status):
        summary += f" (subscription {before_status.replace('_', ' ')} → {subscription.status})"
    details = {"plan_from": before_plan.code if before_plan else None, "plan_to": plan.code}
    if overriding:
        summary += f", overriding Stripe subscription {subscription.stripe_subscription_id}"
        details.update(forced=True, stripe_subscription=subscription.stripe_subscription_id)
    return summary, details


class UnknownCustomer(LookupError):
    """A Stripe object names no tenant of ours."""


@dataclass(frozen=True)
class Applied:
    """What applying a Stripe subscription did."""

    tenant_id: int
    changed: bool
    outcome: str  # a sentence for the event ledger and the console


def tenant_for_stripe(customer_id: str | None, metadata=None, subscription_id: str | None = None) -> Tenant | None:
    """The tenant a Stripe object belongs to: our metadata, its customer, or its subscription id."""
    raw = (metadata or {}).get("tenant_id")
    if raw and str(raw).isdigit() and len(str(raw)) < 12:
        tenant = db.session.get(Tenant, int(raw))
        if tenant is not None and (customer_id is None or tenant.stripe_customer_id in (None, customer_id)):
            return tenant
    if customer_id:
        tenant = db.session.scalar(select(Tenant).where(Tenant.stripe_customer_id == customer_id))
        if tenant is not None:
            return tenant
    if subscription_id:
        return db.session.scalar(select(Tenant).join(Subscription, Subscription.tenant_id == Tenant.id)
                                 .where(Subscription.stripe_subscription_id == subscription_id))
    return None


def _locked_subscription(tenant: Tenant) -> Subscription | None:
    # Row lock: two webhooks for one tenant apply one after the other, each seeing the other's result.
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id)
                             .with_for_update().execution_options(populate_existing=True))


def _flat_item(items: list):
    """The licensed (flat) item: the one that says which plan this is."""
    for item in items:
        recurring = item["price"].get("recurring") or {}
        if recurring.get("usage_type", "licensed") == "licensed":
            return item
    return items[0] if items else None


def _metered_item(items: list):
    for item in items:
        if (item["price"].get("recurring") or {}).get("usage_type") == "metered":
            return item
    return None


def apply_stripe_subscription(obj, *, as_of: datetime, actor: str = "stripe") -> Applied:
    """Make the tenant's subscription say what Stripe's subscription ``obj`` says. Commits.

    ``obj`` is a Stripe Subscription (a StripeObject or its dict) as of
    ``as_of`` (the event's ``created``, or now when read from the API).
    Idempotent, and safe in any order: state older than what was last
    applied changes nothing, and news of an ended subscription does not touch
    the newer one that replaced it. Raises UnknownCustomer when no tenant
    matches (metadata ``tenant_id``, customer, or subscription id), and
    UnstorableStripeObject (changing nothing) when a value would not fit its column.
    """
    check_subscription(obj)
    sub_id, customer = obj["id"], _customer_id(obj)
    tenant = tenant_for_stripe(customer, obj.get("metadata"), sub_id)
    if tenant is None:
        raise UnknownCustomer(f"No tenant for Stripe customer {customer} (subscription {sub_id}).")
    try:
        subscription = _locked_subscription(tenant)
        if subscription is None:
            subscription = Subscription(tenant_id=tenant.id, plan_id=plan_by_code("free").id, status="active")
            db.session.add(subscription)
        ignored = _why_ignored(subscription, obj, as_of)
        if ignored is not None:
            db.session.rollback()
            return Applied(tenant.id, False, ignored)
        before = (subscription.plan_id, subscription.status)
        note = _copy_items(subscription, (obj.get("items") or {}).get("data") or [])
        if tenant.stripe_customer_id is None and customer:
            tenant.stripe_customer_id = customer
        _copy_state(subscription, obj, as_of)
        db.session.flush()
        outcome = f"{db.session.get(Plan, subscription.plan_id).name}, {subscription.status}{note}"
        changed = before != (subscription.plan_id, subscription.status)
        if changed:
            audit.record(actor, "subscription.changed", f"Subscription now {outcome}", tenant_id=tenant.id,
                         stripe_subscription=sub_id)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return Applied(tenant.id, changed, outcome)


def _customer_id(obj) -> str | None:
    """The subscription's customer id, whether Stripe sent the id or the expanded customer."""
    customer = obj.get("customer")
    return customer if isinstance(customer, str) else (customer or {}).get("id")


def _why_ignored(subscription: Subscription, obj, as_of: datetime) -> str | None:
    """Why Stripe's ``obj`` must not be applied over ``subscription`` (an outcome for the ledger), or None."""
    status, sub_id = obj["status"], obj["id"]
    if subscription.last_event_at is not None and as_of < subscription.last_event_at:
        return f"older than the state applied ({subscription.last_event_at:%Y-%m-%d %H:%M:%S}); ignored"
    if (subscription.stripe_subscription_id not in (None, sub_id) and status in ENDED
            and subscription.status not in ENDED):
        return f"subscription {sub_id} ended; the tenant holds {subscription.stripe_subscription_id}"
    if status not in SUBSCRIPTION_STATUSES:
        return f"unknown status {status!r}; ignored"
    return None


def _copy_items(subscription: Subscription, items: list) -> str:
    """Plan, price, period and metered item from the subscription's items; returns a note when the price
    names no plan of ours (the plan is kept)."""
    flat, metered = _flat_item(items), _metered_item(items)
    note = ""
    if flat is not None:
        plan = plan_for_price(flat["price"]["id"], flat["price"].get("lookup_key"),
                              metadata=flat["price"].get("metadata"))
        if plan is not None:
            subscription.plan_id = plan.id
        else:
            note = f"; price {flat['price']['id']} matches no plan, plan kept"
        subscription.stripe_price_id = flat["price"]["id"]
        if flat.get("current_period_start") and flat.get("current_period_end"):
            subscription.current_period_start = from_timestamp(flat["current_period_start"])
            subscription.current_period_end = from_timestamp(flat["current_period_end"])
    subscription.stripe_metered_item_id = metered["id"] if metered is not None else None
    return note


def _copy_state(subscription: Subscription, obj, as_of: datetime) -> None:
    """Status, the past-due start, cancellation and trial from Stripe's ``obj``, as of ``as_of``."""
    status = obj["status"]
    subscription.stripe_subscription_id = obj["id"]
    if status == "past_due":
        subscription.past_due_since = subscription.past_due_since or as_of
    else:
        subscription.past_due_since = None
    subscription.status = status
    subscription.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    subscription.trial_end = from_timestamp(obj["trial_end"]) if obj.get("trial_end") else None
    subscription.last_event_at = as_of
