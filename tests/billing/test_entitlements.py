"""Entitlements follow the subscription's status."""
from __future__ import annotations

from datetime import timedelta

import pytest

from saas.billing import entitlements
from saas.billing.services import subscription_for
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
