"""Entitlements follow the subscription's status."""
from __future__ import annotations

from datetime import timedelta

import pytest

from saas.billing import entitlements
from saas.billing.services import subscription_for
from saas.errors import FeatureNotInPlan, PaymentRequired
from saas.extensions import db
from saas.timeutil import utcnow
from tests.factories import make_tenant


@pytest.mark.parametrize("status, effective", [
    ("active", "pro"), ("trialing", "pro"), ("past_due", "pro"), ("unpaid", "free"),
    ("canceled", "free"), ("incomplete", "free"), ("incomplete_expired", "free"), ("paused", "free"),
])
def test_status_decides_whose_rights_apply(ctx, status, effective):
    tenant = make_tenant("pro")
    subscription = subscription_for(tenant)
    subscription.status = status
    subscription.past_due_since = utcnow() if status == "past_due" else None
    db.session.commit()
    rights = entitlements.for_tenant(tenant)
    assert rights.plan.code == "pro"
    assert rights.effective.code == effective
    assert rights.may("interactive") is (effective == "pro")
    assert rights.may("text")


def test_past_due_keeps_the_plan_only_for_the_grace_period(ctx, app):
    tenant = make_tenant("pro")
    subscription = subscription_for(tenant)
    subscription.status = "past_due"
    subscription.past_due_since = utcnow() - timedelta(days=app.config["PAST_DUE_GRACE_DAYS"] + 1)
    db.session.commit()
    rights = entitlements.for_tenant(tenant)
    assert rights.effective.code == "free"
    assert "grace" in rights.notice


def test_suspended_tenant_may_do_nothing(ctx):
    tenant = make_tenant("enterprise")
    tenant.status = "suspended"
    db.session.commit()
    rights = entitlements.for_tenant(tenant)
    assert rights.suspended and not rights.may("text")


def _rights(plan: str, status: str = "active", *, past_due_days: int = 0):
    tenant = make_tenant(plan)
    subscription = subscription_for(tenant)
    subscription.status = status
    subscription.past_due_since = utcnow() - timedelta(days=past_due_days) if status == "past_due" else None
    db.session.commit()
    return entitlements.for_tenant(tenant)


def test_require_lets_a_feature_of_the_plan_in_force_through(ctx):
    assert _rights("starter").require("media", "media uploads") is None


def test_require_refuses_a_feature_no_plan_paid_for_includes_as_not_in_plan(ctx):
    with pytest.raises(FeatureNotInPlan) as refused:
        _rights("starter").require("interactive", "'interactive' messages", type="interactive")
    error = refused.value
    assert (error.status, error.code) == (403, "feature_not_in_plan")
    assert error.message == "Your Starter plan does not include 'interactive' messages."
    assert error.details == {"feature": "interactive", "type": "interactive", "plan": "starter"}


@pytest.mark.parametrize("status, past_due_days", [("unpaid", 0), ("past_due", 400)])
def test_require_asks_for_payment_when_the_plan_paid_for_includes_the_feature(ctx, status, past_due_days):
    rights = _rights("pro", status, past_due_days=past_due_days)
    with pytest.raises(PaymentRequired) as refused:
        rights.require("media", "media uploads")
    error = refused.value
    assert (error.status, error.code) == (402, "payment_required")
    assert error.details == {"status": status, "plan": "pro", "effective_plan": "free", "feature": "media"}
    # A feature the plan paid for lacks too is not a matter of payment.
    with pytest.raises(FeatureNotInPlan):
        _rights("starter", status, past_due_days=past_due_days).require("interactive", "'interactive' messages")


def test_require_refuses_a_suspended_tenant_even_what_its_plan_includes(ctx):
    rights = _rights("enterprise")
    tenant_rights = entitlements.Entitlements(plan=rights.plan, effective=rights.effective, status="active",
                                              notice=None, suspended=True)
    with pytest.raises(FeatureNotInPlan):
        tenant_rights.require("text", "'text' messages")
