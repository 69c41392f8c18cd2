"""Changing the plan of a standing subscription: Stripe's invoice preview, then the update with proration.

Like checkout, every function takes the StripeClient first; Stripe failing
raises BillingUnavailable and changes nothing here, and the subscription Stripe
returns becomes our state through ``services.apply_stripe_subscription``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from saas.billing.checkout import ATTEMPT, PlanNotOffered, _plain, is_subscriber, purchasable_plan, stripe_call
from saas.billing.entitlements import Entitlements
from saas.billing.models import Plan, Subscription
from saas.billing.services import _flat_item, _metered_item, apply_stripe_subscription, subscription_for
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp, utcnow

# A previewed proration date older than this is previewed again rather than confirmed.
PREVIEW_VALID_SECONDS = 3600


class PreviewExpired(PlanNotOffered):
    """The preview being confirmed is too old (or malformed): preview again."""


@dataclass(frozen=True)
class PreviewLine:
    description: str
    amount: int
    proration: bool


@dataclass(frozen=True)
class Preview:
    plan: Plan
    lines: list[PreviewLine]
    proration_total: int   # what the change itself costs (negative: a credit)
    amount_due: int        # the next invoice, prorations included
    currency: str
    proration_date: int
    next_payment_at: datetime | None


def _standing_subscription(tenant: Tenant) -> Subscription:
    subscription = subscription_for(tenant)
    if not is_subscriber(subscription):
        raise PlanNotOffered("You have no subscription to change; choose a plan to subscribe.")
    return subscription


def _swapped_items(stripe_subscription: dict, plan: Plan) -> list[dict]:
    """The items update: the flat item to the plan's price, the metered item to its metered price (or gone)."""
    items = (stripe_subscription.get("items") or {}).get("data") or []
    flat, metered = _flat_item(items), _metered_item(items)
    if flat is None:
        raise PlanNotOffered("Your subscription has no plan item to change; contact support.")
    changes = [{"id": flat["id"], "price": plan.stripe_price_id}]
    if plan.overage_cents is not None:
        changes.append({"id": metered["id"], "price": plan.stripe_metered_price_id} if metered is not None
                       else {"price": plan.stripe_metered_price_id})
    elif metered is not None:
        changes.append({"id": metered["id"], "deleted": True})
    return changes


def _retrieve_subscription(stripe, subscription: Subscription) -> dict:
    with stripe_call("read the subscription"):
        return _plain(stripe.v1.subscriptions.retrieve(subscription.stripe_subscription_id))


def preview_change(stripe, tenant: Tenant, rights: Entitlements, plan_code: str) -> Preview:
    """Stripe's invoice preview of switching the standing subscription to ``plan_code``. Changes nothing.

    Raises PlanNotOffered, BillingUnavailable.
    """
    plan = purchasable_plan(plan_code, rights)
    subscription = _standing_subscription(tenant)
    current = _retrieve_subscription(stripe, subscription)
    proration_date = int(utcnow().timestamp())
    params = {
        "customer": tenant.stripe_customer_id or current.get("customer"),
        "subscription": subscription.stripe_subscription_id,
        "subscription_details": {"items": _swapped_items(current, plan), "proration_behavior": "create_prorations",
                                 "proration_date": proration_date},
    }
    with stripe_call("preview the invoice"):
        invoice = _plain(stripe.v1.invoices.create_preview(params=params))
    lines = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        details = (line.get("parent") or {}).get("subscription_item_details") or {}
        lines.append(PreviewLine(line.get("description") or "", int(line.get("amount") or 0),
                                 bool(details.get("proration"))))
    attempt = invoice.get("next_payment_attempt")
    return Preview(plan=plan, lines=lines, proration_total=sum(l.amount for l in lines if l.proration),
                   amount_due=int(invoice.get("amount_due") or 0), currency=invoice.get("currency") or plan.currency,
                   proration_date=proration_date, next_payment_at=from_timestamp(attempt) if attempt else None)


def change_plan(stripe, tenant: Tenant, rights: Entitlements, plan_code: str, *, proration_date: int,
                attempt: str, actor) -> Subscription:
    """Switch the standing subscription to ``plan_code`` with prorations, as previewed. Commits.

    The update carries the previewed ``proration_date`` (so the charge is the
    one shown) and an idempotency key per confirmation; the subscription Stripe
    returns is applied at once. Raises PlanNotOffered (plan not on sale, no
    subscription, preview too old), BillingUnavailable (nothing changed here).
    """
    plan = purchasable_plan(plan_code, rights)
    subscription = _standing_subscription(tenant)
    now = int(utcnow().timestamp())
    if not ATTEMPT.match(attempt or "") or not (now - PREVIEW_VALID_SECONDS <= proration_date <= now):
        raise PreviewExpired("That preview is out of date; here is a new one.")
    current = _retrieve_subscription(stripe, subscription)
    params = {"items": _swapped_items(current, plan), "proration_behavior": "create_prorations",
              "proration_date": proration_date,
              "metadata": {"app": "relay", "tenant_id": str(tenant.id), "plan_code": plan.code}}
    with stripe_call("change the subscription"):
        updated = _plain(stripe.v1.subscriptions.update(
            subscription.stripe_subscription_id, params=params,
            options={"idempotency_key": f"plan-change-{subscription.stripe_subscription_id}-{plan.code}-{attempt}"}))
    apply_stripe_subscription(updated, as_of=utcnow(), actor=actor)
    return subscription_for(tenant)
