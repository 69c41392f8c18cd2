"""Buying a plan through Stripe: what is offered, Checkout, the Customer Portal, invoices.

Changing the plan of a standing subscription is in plan_changes.

Every function takes the StripeClient (``stripe_client.client()``) as its
first argument. Stripe failing or not answering in time raises
BillingUnavailable and changes nothing here; a Stripe object becomes our
state only through ``services.apply_stripe_subscription``, the function the
webhook calls too.
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import stripe as stripe_sdk
from sqlalchemy import update

from saas.audit import services as audit
from saas.billing.catalog import active_plans, plan_by_code
from saas.billing.entitlements import Entitlements
from saas.billing.models import Plan, Subscription
from saas.billing.services import apply_stripe_subscription, subscription_for
from saas.errors import BillingUnavailable, NotFound
from saas.extensions import db
from saas.tenants.models import ROLE_OWNER, Tenant
from saas.timeutil import from_timestamp, utcnow

log = logging.getLogger(__name__)

# Statuses of a subscription that still stands: choosing another plan changes it, not buys a second one.
STANDING = ("active", "trialing", "past_due")
# What the billing page offers for each status whose paid rights are withdrawn or at risk.
UPDATE_CARD = ("past_due", "paused")
RESUBSCRIBE = ("unpaid", "canceled", "incomplete", "incomplete_expired")

# A form's one-time attempt id: the same submission sent twice creates one thing at Stripe.
ATTEMPT = re.compile(r"^[0-9a-f]{16,64}$")
CHECKOUT_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


class PlanNotOffered(Exception):
    """The plan cannot be bought or switched to by this tenant now; the message says why."""


class NoCustomer(Exception):
    """The tenant has never been to Checkout, so there is no Stripe customer to manage."""


@contextmanager
def stripe_call(what: str):
    """Turn any Stripe failure (error answer, timeout, no connection) into BillingUnavailable."""
    try:
        yield
    except stripe_sdk.StripeError as exc:
        log.warning("Stripe could not %s: %s", what, exc.user_message or exc.__class__.__name__,
                    extra={"stripe_status": exc.http_status, "stripe_code": exc.code})
        raise BillingUnavailable() from exc


def _plain(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


# -- what the billing page offers -------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    plan: Plan
    # current | checkout | change | cancel_in_portal | not_synced | not_configured | admin
    action: str


def is_synced(plan: Plan) -> bool:
    """The plan has the Stripe prices a subscription to it needs (``flask plans sync`` sets them)."""
    return bool(plan.stripe_price_id) and (plan.overage_cents is None or bool(plan.stripe_metered_price_id))


def is_subscriber(subscription: Subscription | None) -> bool:
    """A Stripe subscription that still stands: another plan is a change of it, not a new checkout."""
    return (subscription is not None and subscription.stripe_subscription_id is not None
            and subscription.status in STANDING)


def current_plan_code(rights: Entitlements) -> str:
    """The plan the tenant holds: the subscribed one while it stands, else the one whose rights apply."""
    return rights.plan.code if rights.status in STANDING else rights.effective.code


def offers(tenant: Tenant, rights: Entitlements, *, configured: bool) -> list[Offer]:
    """Every plan on sale, with what the tenant can do about it. Archived plans are not on sale."""
    subscription = subscription_for(tenant)
    current = current_plan_code(rights)
    subscriber = is_subscriber(subscription)
    result = []
    for plan in active_plans():
        if plan.code == current:
            action = "current"
        elif plan.is_free:
            # Going back to free is a cancellation at period end, which the Customer Portal does.
            # Without a Stripe subscription (a plan assigned by hand) only an admin moves the tenant.
            action = "cancel_in_portal" if subscriber and tenant.stripe_customer_id else "admin"
        elif not configured:
            action = "not_configured"
        elif not is_synced(plan):
            action = "not_synced"
        else:
            action = "change" if subscriber else "checkout"
        result.append(Offer(plan, action))
    return result


def way_out(rights: Entitlements, tenant) -> str | None:
    """What the tenant can do when paid rights are withdrawn or at risk: "update_card", "resubscribe" or None."""
    if rights.suspended or rights.plan.is_free:
        return None
    if rights.status in UPDATE_CARD:
        return "update_card" if getattr(tenant, "stripe_customer_id", None) else "resubscribe"
    if rights.status in RESUBSCRIBE:
        return "resubscribe"
    return None


def purchasable_plan(code: str, rights: Entitlements) -> Plan:
    """The plan ``code`` if the tenant may choose it now; else PlanNotOffered saying why."""
    plan = plan_by_code(code or "")
    if plan is None or not plan.active:
        raise PlanNotOffered("That plan is not on sale.")
    if plan.code == current_plan_code(rights):
        raise PlanNotOffered(f"You are already on the {plan.name} plan.")
    if plan.is_free:
        raise PlanNotOffered("To go back to the free plan, cancel your subscription in the billing portal; "
                             "it ends at the end of the period you paid for.")
    if not is_synced(plan):
        raise PlanNotOffered(f"The {plan.name} plan is not available for online purchase yet.")
    return plan


# -- the Stripe customer ----------------------------------------------------------------------

def ensure_customer(stripe, tenant: Tenant) -> str:
    """The tenant's Stripe customer id, creating the customer once. Commits the id.

    Idempotent: the create carries the key ``customer-tenant-{id}``, so a retry
    (or two checkouts at once) makes one customer; an id already stored is reused
    without calling Stripe. Raises BillingUnavailable.
    """
    if tenant.stripe_customer_id:
        return tenant.stripe_customer_id
    owner = next((u for u in tenant.users if u.role == ROLE_OWNER), None) or next(iter(tenant.users), None)
    params = {"name": tenant.name, "metadata": {"app": "relay", "tenant_id": str(tenant.id)}}
    if owner is not None:
        params["email"] = owner.email
    with stripe_call("create a customer"):
        customer = stripe.v1.customers.create(params=params, options={"idempotency_key": f"customer-tenant-{tenant.id}"})
    try:
        # Stored at once: the customer exists at Stripe whatever happens next, and is reused.
        db.session.execute(update(Tenant).where(Tenant.id == tenant.id, Tenant.stripe_customer_id.is_(None))
                           .values(stripe_customer_id=customer.id))
        audit.record("stripe", "billing.customer_created", f"Stripe customer {customer.id} created",
                     tenant_id=tenant.id, stripe_customer=customer.id)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    db.session.refresh(tenant)
    return tenant.stripe_customer_id


# -- Checkout -------------------------------------------------------------------------------

def checkout_params(tenant: Tenant, plan: Plan, customer_id: str, *, success_url: str, cancel_url: str,
                    trial: bool) -> dict:
    line_items = [{"price": plan.stripe_price_id, "quantity": 1}]
    if plan.overage_cents is not None:
        # Metered prices take no quantity: Stripe bills what the meter counted.
        line_items.append({"price": plan.stripe_metered_price_id})
    subscription_data: dict = {"metadata": {"app": "relay", "tenant_id": str(tenant.id), "plan_code": plan.code}}
    if trial and plan.trial_days:
        subscription_data["trial_period_days"] = plan.trial_days
    return {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(tenant.id),
        "line_items": line_items,
        "subscription_data": subscription_data,
        "metadata": {"app": "relay", "tenant_id": str(tenant.id), "plan_code": plan.code},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }


def start_checkout(stripe, tenant: Tenant, rights: Entitlements, plan_code: str, *, attempt: str,
                   success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout Session for a subscription to ``plan_code``; returns its URL.

    Changes nothing here but the tenant's Stripe customer id (created on the
    first checkout, reused after). A trial is offered when the plan has one and
    the tenant never had a Stripe subscription. The session create is
    idempotent per form submission (``attempt``). Raises PlanNotOffered (also
    for a standing subscriber, who changes plan instead) or BillingUnavailable.
    """
    plan = purchasable_plan(plan_code, rights)
    subscription = subscription_for(tenant)
    if is_subscriber(subscription):
        raise PlanNotOffered("You already have a subscription: choose the plan to switch to on the billing page.")
    if not ATTEMPT.match(attempt or ""):
        raise PlanNotOffered("The form has expired; please choose the plan again.")
    customer_id = ensure_customer(stripe, tenant)
    never_subscribed = subscription is None or subscription.stripe_subscription_id is None
    params = checkout_params(tenant, plan, customer_id, success_url=success_url, cancel_url=cancel_url,
                             trial=never_subscribed)
    with stripe_call("create a Checkout Session"):
        session = stripe.v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"checkout-tenant-{tenant.id}-{plan.code}-{attempt}"})
    return session.url


@dataclass(frozen=True)
class CheckoutResult:
    # complete | processing | expired
    state: str
    plan_name: str | None = None
    status: str | None = None


def finish_checkout(stripe, tenant: Tenant, session_id: str, *, actor) -> CheckoutResult:
    """The tenant is back from Checkout: apply the subscription it created at once (commits).

    The webhook applies the same subscription later; applying is idempotent.
    Raises NotFound for a session that is not this tenant's (or does not
    exist), BillingUnavailable when Stripe fails.
    """
    if not CHECKOUT_SESSION_ID.match(session_id or ""):
        raise NotFound()
    with stripe_call("read a Checkout Session"):
        try:
            session = _plain(stripe.v1.checkout.sessions.retrieve(session_id))
        except stripe_sdk.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise NotFound() from None
            raise
    customer = session.get("customer")
    if session.get("client_reference_id") != str(tenant.id) or (
            customer and tenant.stripe_customer_id and customer != tenant.stripe_customer_id):
        raise NotFound()
    if session.get("status") == "expired":
        return CheckoutResult("expired")
    if session.get("status") != "complete" or not session.get("subscription"):
        return CheckoutResult("processing")
    sub_id = session["subscription"] if isinstance(session["subscription"], str) else session["subscription"]["id"]
    with stripe_call("read a subscription"):
        subscription = _plain(stripe.v1.subscriptions.retrieve(sub_id))
    apply_stripe_subscription(subscription, as_of=utcnow(), actor=actor)
    held = subscription_for(tenant)
    state = "complete" if subscription["status"] in ("active", "trialing") else "processing"
    return CheckoutResult(state, held.plan.name if held else None, subscription["status"])


# -- the Customer Portal ------------------------------------------------------------------------

def portal_url(stripe, tenant: Tenant, *, return_url: str) -> str:
    """A Customer Portal session (card, invoices, cancel) for the tenant's customer; its URL.

    Raises NoCustomer when the tenant has none yet, BillingUnavailable.
    """
    if not tenant.stripe_customer_id:
        raise NoCustomer()
    with stripe_call("open the billing portal"):
        session = stripe.v1.billing_portal.sessions.create(
            params={"customer": tenant.stripe_customer_id, "return_url": return_url})
    return session.url


# -- invoices --------------------------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceRow:
    id: str
    created: datetime
    number: str | None
    amount: int
    currency: str
    status: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


def invoices(stripe, tenant: Tenant, *, limit: int = 24) -> list[InvoiceRow]:
    """The tenant's most recent invoices, newest first ([] without a Stripe customer). Raises BillingUnavailable."""
    if not tenant.stripe_customer_id:
        return []
    with stripe_call("list invoices"):
        listing = _plain(stripe.v1.invoices.list(params={"customer": tenant.stripe_customer_id, "limit": limit}))
    return [InvoiceRow(id=i["id"], created=from_timestamp(i["created"]), number=i.get("number"),
                       amount=int(i.get("total") if i.get("total") is not None else i.get("amount_due") or 0),
                       currency=i.get("currency") or "usd", status=i.get("status"),
                       hosted_invoice_url=i.get("hosted_invoice_url"), invoice_pdf=i.get("invoice_pdf"))
            for i in listing.get("data") or []]
