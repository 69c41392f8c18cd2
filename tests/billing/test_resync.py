"""flask billing resync: what missed webhooks left stale is repaired, and a second run changes nothing."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from saas.audit.models import AuditEvent
from saas.billing.models import StripeEvent
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp
from tests import factories
from tests.billing.test_webhooks import (changes, checkout, count, fail_payment, ledger, pay, prices,  # noqa: F401
                                         rights, state, subscribed)


@pytest.fixture(autouse=True)
def an_hour_ago(stripe):
    """Stripe's events here happened an hour ago (the fake's clock runs on with every event)."""
    stripe.clock = float(int(time.time()) - 3600)


def resync(runner):
    db.session.commit()  # the test's transaction ends first (SQLite: its write lock)
    return runner.invoke(args=["billing", "resync"])


def paying_tenant(client, stripe, prices, code="pro", name="Acme"):
    tenant = factories.make_tenant(name=name)
    return tenant, subscribed(client, stripe, tenant, prices, code)


def test_missed_events_are_applied_and_the_change_is_listed(ctx, app, client, runner, stripe, prices):
    tenant, sub_id = paying_tenant(client, stripe, prices)
    updated, failed = fail_payment(stripe, sub_id, delivered=False)  # Stripe could not reach us
    result = resync(runner)
    assert result.exit_code == 0, result.output
    assert f"tenant {tenant.slug}: Pro, active -> Pro, past_due" in result.stdout.splitlines()
    assert "Undelivered events: 2 (2 applied now, 0 already processed)" in result.stdout
    sub = state(tenant.id)
    assert sub.status == "past_due" and sub.past_due_since == from_timestamp(failed["created"])
    assert ledger(updated["id"]).processed_at is not None and ledger(failed["id"]).processed_at is not None
    assert rights(tenant).effective.code == "pro"  # within the grace period


def test_a_second_resync_changes_nothing(ctx, client, runner, stripe, prices):
    tenant, sub_id = paying_tenant(client, stripe, prices)
    fail_payment(stripe, sub_id, delivered=False)
    pay(stripe, sub_id, delivered=False)
    first = resync(runner)
    assert first.exit_code == 0, first.output
    # Past due and paid again: where the tenant stands is what it was.
    assert "Tenants changed: 0" in first.stdout and "4 applied now" in first.stdout
    before = (count(AuditEvent), count(StripeEvent), changes(tenant.id))
    second = resync(runner)
    assert second.exit_code == 0, second.output
    assert "(0 applied now, 4 already processed)" in second.stdout and "Tenants changed: 0" in second.stdout
    assert not [line for line in second.stdout.splitlines() if line.startswith("tenant ")]
    assert (count(AuditEvent), count(StripeEvent), changes(tenant.id)) == before
    assert state(tenant.id).status == "active"


def test_a_change_without_any_event_is_read_from_stripe(ctx, client, runner, stripe, prices):
    tenant, sub_id = paying_tenant(client, stripe, prices)
    other, _ = paying_tenant(client, stripe, prices, "starter", name="Globex")
    stripe.get(sub_id)["status"] = "unpaid"  # the event was lost for good
    result = resync(runner)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("tenant ")]
    assert lines == [f"tenant {tenant.slug}: Pro, active -> Pro, unpaid"]
    assert "Subscriptions read: 2" in result.stdout
    assert state(tenant.id).status == "unpaid" and rights(tenant).effective.code == "free"
    assert state(other.id).status == "active"
    again = resync(runner)
    assert "Tenants changed: 0" in again.stdout


def test_a_customer_without_a_known_subscription_gets_its_newest_live_one(ctx, client, runner, stripe, prices):
    tenant = factories.make_tenant(name="Initech")
    customer = stripe.customer(tenant_id=str(tenant.id))["id"]
    old = stripe.subscription(customer, [prices["starter"]], status="canceled")
    stripe.tick(60)
    stripe.subscription(customer, [prices["starter"]], status="past_due")
    stripe.tick(60)
    live = stripe.subscription(customer, [prices["pro"], prices["pro_overage"]])
    stripe.tick(60)
    stripe.subscription(customer, [prices["enterprise"]], status="incomplete_expired")
    tenant.stripe_customer_id = customer
    lonely = factories.make_tenant(name="Hooli")
    lonely.stripe_customer_id = stripe.customer()["id"]
    stripe.subscription(lonely.stripe_customer_id, [prices["pro"]], status="canceled")
    result = resync(runner)
    assert result.exit_code == 0, result.output
    assert f"tenant {tenant.slug}: Free, active -> Pro, active" in result.stdout
    assert state(tenant.id).stripe_subscription_id == live["id"] != old["id"]
    assert state(lonely.id).plan.code == "free"  # an ended subscription is not brought back
    listed = stripe.requests("GET", "/v1/subscriptions")
    assert {(c.params.get("customer"), c.params.get("status")) for c in listed if "customer" in c.params} == {
        (customer, "all"), (lonely.stripe_customer_id, "all")}


def test_undelivered_events_are_listed_page_by_page_from_thirty_days_back(ctx, runner, stripe):
    for n in range(105):
        stripe.event("customer.created", stripe.customer(f"c{n}@example.com"), delivered=False)
    stripe.event("customer.created", stripe.customer(), delivered=True)
    result = resync(runner)
    assert result.exit_code == 0, result.output
    assert "Undelivered events: 105 (105 applied now" in result.stdout
    calls = stripe.requests("GET", "/v1/events")
    assert len(calls) == 2 and "starting_after" not in calls[0].params
    undelivered = sorted((e for e in stripe.events if e["pending_webhooks"]), key=lambda e: (e["created"], e["id"]),
                         reverse=True)
    assert calls[1].params["starting_after"] == undelivered[99]["id"]  # Stripe lists newest first
    assert calls[0].params["delivery_success"] == "false"
    assert abs(int(calls[0].params["created"]["gte"]) - (int(time.time()) - 30 * 86400)) < 60
    assert count(StripeEvent, StripeEvent.processed_at.is_not(None)) == 105


def test_without_stripe_resync_exits_non_zero(ctx, app, runner, stripe):
    app.config["STRIPE_SECRET_KEY"] = None  # the stripe fixture puts both back
    app.extensions["stripe"] = None
    result = resync(runner)
    assert result.exit_code == 1
    assert "Stripe is not configured: set STRIPE_SECRET_KEY." in result.output


def test_when_stripe_cannot_list_events_resync_exits_non_zero_and_changes_nothing(ctx, client, runner, stripe,
                                                                                   prices):
    tenant, sub_id = paying_tenant(client, stripe, prices)
    stripe.get(sub_id)["status"] = "unpaid"
    stripe.fail("GET", "/v1/events", status=500)
    result = resync(runner)
    assert result.exit_code == 1
    assert "Stripe could not list its undelivered events" in result.output
    assert state(tenant.id).status == "active"


def test_a_tenant_stripe_fails_on_is_reported_and_the_others_are_synced(ctx, client, runner, stripe, prices):
    tenant, sub_id = paying_tenant(client, stripe, prices)
    other, other_sub = paying_tenant(client, stripe, prices, "starter", name="Globex")
    stripe.get(sub_id)["status"] = stripe.get(other_sub)["status"] = "unpaid"
    stripe.fail("GET", f"/v1/subscriptions/{sub_id}", status=500)
    result = resync(runner)
    assert result.exit_code == 1
    assert f"tenant {tenant.slug}: Stripe failed" in result.output
    assert f"tenant {other.slug}: Starter, active -> Starter, unpaid" in result.stdout
    assert state(tenant.id).status == "active" and state(other.id).status == "unpaid"
    again = resync(runner)
    assert again.exit_code == 0, again.output
    assert f"tenant {tenant.slug}: Pro, active -> Pro, unpaid" in again.stdout


def test_a_missed_event_that_fails_again_is_reported_and_applied_by_the_next_run(ctx, client, runner, stripe,
                                                                                  prices):
    tenant, sub_id = paying_tenant(client, stripe, prices)
    _, failed = fail_payment(stripe, sub_id, delivered=False)
    stripe.fail("GET", f"/v1/subscriptions/{sub_id}", status=500)
    first = resync(runner)
    assert first.exit_code == 1
    assert f"event {failed['id']} (invoice.payment_failed)" in first.output
    row = ledger(failed["id"])
    assert row.processed_at is None and "APIError" in row.error
    second = resync(runner)
    assert second.exit_code == 0, second.output
    assert ledger(failed["id"]).processed_at is not None and state(tenant.id).status == "past_due"


def test_a_checkout_missed_entirely_is_repaired(ctx, client, runner, stripe, prices):
    tenant = factories.make_tenant(name="Umbrella")
    events, sub_id = checkout(stripe, tenant, prices, "enterprise")
    for event in events:
        event["pending_webhooks"] = 1  # none reached us
    result = resync(runner)
    assert result.exit_code == 0, result.output
    assert f"tenant {tenant.slug}: Free, active -> Enterprise, active" in result.stdout
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).stripe_customer_id == events[0]["data"]["object"]["customer"]
    assert db.session.scalar(select(AuditEvent.actor).where(AuditEvent.action == "subscription.changed",
                                                            AuditEvent.tenant_id == tenant.id)) == "stripe"
