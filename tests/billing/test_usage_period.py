"""The usage period follows the rights in force: the calendar month under free rights, Stripe's under the plan's own."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from saas.billing.services import assign_plan, subscription_for
from saas.extensions import db
from saas.metering.services import current_period
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp, month_start, next_month_start, utcnow
from tests.billing.stripe_fake import create_checkout_session
from tests.billing.test_webhooks import deliver, prices, state  # noqa: F401
from tests.factories import make_tenant, sender, set_quota


def usage(api):
    return api.get("/api/v1/usage").get_json()


def open_subscription(stripe, tenant_id, prices, *, status: str) -> dict:
    """A Checkout for Pro whose subscription Stripe creates as ``status``; the subscription.created event."""
    session = create_checkout_session(stripe, {
        "mode": "subscription", "client_reference_id": str(tenant_id), "customer_email": "owner@example.com",
        "line_items": [{"price": prices["pro"]["id"], "quantity": "1"}, {"price": prices["pro_overage"]["id"]}],
        "subscription_data": {"metadata": {"app": "relay", "tenant_id": str(tenant_id)}}})
    return stripe.complete_checkout(session["id"], status=status)[1]


def assert_free_cap_reached(response):
    """402 at the free cap. Said as payment_required (paying for Pro would allow the send, see
    Entitlements.payment_required), with the free plan's quota all used this month."""
    assert response.status_code == 402, response.get_json()
    error = response.get_json()["error"]
    assert error["reason"] == "payment_required" and error["upgrade_url"].endswith("/billing")
    assert "past the free plan's quota" in error["message"]
    assert error["details"] == {**error["details"], "effective_plan": "free", "quota": 1, "used": 1}


@pytest.fixture
def capped(app, client, ctx, stripe):
    """A free tenant's API client, one conversation from the free cap; Stripe's clock an hour back, so a
    subscription started now has a period that starts an hour ago (not on the first of the month)."""
    set_quota("free", 1)
    stripe.clock = float(int(time.time()) - 3600)
    return sender(client, "free")


def test_an_incomplete_subscription_keeps_the_free_cap_counted_from_the_month(app, client, stripe, prices, capped):
    assert capped.send(to="15551230001").status_code == 200
    created = open_subscription(stripe, capped.tenant_id, prices, status="incomplete")
    assert deliver(client, stripe, created).status_code == 200
    held = state(capped.tenant_id)
    assert (held.plan.code, held.status) == ("pro", "incomplete")
    item = created["data"]["object"]["items"]["data"][0]
    assert held.current_period_start == from_timestamp(item["current_period_start"]) != month_start(utcnow())

    refused = capped.send(to="15551230002")
    assert refused.status_code == 402, refused.get_json()
    assert_free_cap_reached(refused)
    current = usage(capped)
    now = utcnow()
    assert current["period"]["start"] == f"{month_start(now):%Y-%m-%dT%H:%M:%S}Z"
    assert (current["plan"]["code"], current["used"], current["remaining"]) == ("free", 1, 0)


def test_paid_rights_begin_a_paid_period_and_losing_them_brings_the_month_back(app, client, stripe, prices, capped):
    assert capped.send(to="15551230001").status_code == 200
    created = open_subscription(stripe, capped.tenant_id, prices, status="incomplete")
    assert deliver(client, stripe, created).status_code == 200
    sub_id = created["data"]["object"]["id"]
    paid_from = state(capped.tenant_id).current_period_start

    # The payment goes through: Pro's own period, and Pro's included conversations count from zero in it.
    assert deliver(client, stripe, stripe.subscription_event(sub_id, status="active")).status_code == 200
    assert usage(capped)["period"]["start"] == f"{paid_from:%Y-%m-%dT%H:%M:%S}Z"
    assert usage(capped)["used"] == 0
    assert capped.send(to="15551230002").status_code == 200
    assert (usage(capped)["plan"]["code"], usage(capped)["used"]) == ("pro", 1)

    # Unpaid: the free plan's rights and its month, where the conversation sent on free rights still counts.
    assert deliver(client, stripe, stripe.subscription_event(sub_id, status="unpaid")).status_code == 200
    current = usage(capped)
    assert (current["plan"]["code"], current["used"]) == ("free", 1)
    assert current["period"]["start"] == f"{month_start(utcnow()):%Y-%m-%dT%H:%M:%S}Z"
    assert_free_cap_reached(capped.send(to="15551230003"))


def with_status(tenant, status, **fields):
    subscription = subscription_for(tenant)
    start = utcnow() - timedelta(hours=1)
    subscription.status = status
    subscription.current_period_start, subscription.current_period_end = start, start + timedelta(days=30)
    for name, value in fields.items():
        setattr(subscription, name, value)
    db.session.commit()
    return subscription


@pytest.mark.parametrize("status, stripes", [
    ("active", True), ("trialing", True), ("past_due", True),
    ("incomplete", False), ("incomplete_expired", False), ("unpaid", False), ("canceled", False), ("paused", False),
])
def test_only_the_plans_own_rights_use_stripes_period(ctx, status, stripes):
    subscription = with_status(make_tenant("pro"), status, past_due_since=utcnow() if status == "past_due" else None)
    now = utcnow()
    month = (month_start(now), next_month_start(now))
    stripe_period = (subscription.current_period_start, subscription.current_period_end)
    period = current_period(subscription, now)
    assert (period.start, period.end) == (stripe_period if stripes else month)


def test_past_due_uses_stripes_period_until_the_grace_period_ends(ctx, app):
    grace = timedelta(days=app.config["PAST_DUE_GRACE_DAYS"])
    since = utcnow() - timedelta(minutes=30)
    subscription = with_status(make_tenant("pro"), "past_due", past_due_since=since)
    inside = since + grace - timedelta(minutes=1)
    subscription.current_period_end = since + grace + timedelta(days=1)
    db.session.commit()
    assert current_period(subscription, inside).start == subscription.current_period_start
    after = since + grace + timedelta(minutes=1)
    assert current_period(subscription, after).start == month_start(after)


def test_a_plan_set_by_hand_after_stripe_uses_the_calendar_month(ctx):
    tenant = make_tenant("pro")
    with_status(tenant, "canceled", stripe_subscription_id="sub_gone")
    assign_plan(db.session.get(Tenant, tenant.id), "pro", actor="cli", stripe_configured=True)
    subscription = subscription_for(tenant)
    assert subscription.status == "active" and subscription.current_period_start is None
    assert current_period(subscription).start == month_start(utcnow())
