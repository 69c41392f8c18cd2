"""apply_stripe_subscription: Stripe's subscription becomes ours, in any order, once."""
from datetime import timedelta

import pytest

from saas.billing import entitlements
from saas.billing.models import Plan, Subscription
from saas.billing.services import UnknownCustomer, apply_stripe_subscription
from saas.extensions import db
from saas.timeutil import from_timestamp
from tests import factories


def paid_subscription(stripe, tenant, code="pro", status="active"):
    plan = db.session.scalar(db.select(Plan).where(Plan.code == code))
    price = stripe.price({"product": "prod_x", "unit_amount": plan.price_cents, "currency": "usd",
                          "recurring": {"interval": "month"}, "lookup_key": code})
    customer = stripe.customer(metadata={"tenant_id": str(tenant.id)})
    tenant.stripe_customer_id = customer["id"]
    db.session.commit()
    return stripe.subscription(customer["id"], [price], status=status, metadata={"tenant_id": str(tenant.id)})


def test_subscription_sets_plan_status_and_period(ctx, stripe):
    tenant = factories.make_tenant()
    obj = paid_subscription(stripe, tenant)
    applied = apply_stripe_subscription(obj, as_of=from_timestamp(obj["created"]))
    sub = db.session.scalar(db.select(Subscription).where(Subscription.tenant_id == tenant.id))
    assert applied.changed and sub.plan.code == "pro" and sub.status == "active"
    assert sub.stripe_subscription_id == obj["id"]
    assert sub.current_period_end == from_timestamp(obj["items"]["data"][0]["current_period_end"])
    assert entitlements.for_tenant(tenant).effective.code == "pro"


def test_older_state_changes_nothing(ctx, stripe):
    tenant = factories.make_tenant()
    obj = paid_subscription(stripe, tenant)
    now = from_timestamp(obj["created"])
    apply_stripe_subscription({**obj, "status": "past_due"}, as_of=now + timedelta(seconds=10))
    applied = apply_stripe_subscription({**obj, "status": "active"}, as_of=now)
    assert not applied.changed and "older" in applied.outcome
    assert db.session.scalar(db.select(Subscription.status).where(Subscription.tenant_id == tenant.id)) == "past_due"


def test_unknown_customer_is_refused(ctx, stripe):
    obj = stripe.subscription("cus_nobody", [], metadata={})
    with pytest.raises(UnknownCustomer):
        apply_stripe_subscription(obj, as_of=from_timestamp(obj["created"]))
