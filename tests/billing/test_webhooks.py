"""POST /webhooks/stripe: verified, recorded once, applied once, in any order."""
from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError

from saas.audit.models import AuditEvent
from saas.billing import entitlements, stripe_events
from saas.billing import webhooks as billing_webhooks
from saas.billing.catalog import plan_by_code
from saas.billing.models import StripeEvent, Subscription
from saas.billing.services import start_subscription
from saas.billing.webhooks import payment_action_needed
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp, utcnow
from tests import factories
from tests.billing.stripe_fake import create_checkout_session
from tests.metering.test_concurrency import THREADS, pg_only, run_in_parallel  # noqa: F401

PAID = ("starter", "pro", "enterprise")


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture
def prices(ctx, stripe):
    """The flat and metered prices of the paid plans, as the catalog sync leaves them."""
    found = {}
    for code in PAID:
        plan = plan_by_code(code)
        flat = stripe.price({"product": f"prod_{code}", "unit_amount": str(plan.price_cents), "currency": "usd",
                             "recurring": {"interval": "month"}, "lookup_key": code,
                             "metadata": {"app": "relay", "plan_code": code, "kind": "flat"}})
        metered = stripe.price({"product": f"prod_{code}", "unit_amount_decimal": str(plan.overage_cents),
                                "currency": "usd", "lookup_key": f"{code}_overage",
                                "recurring": {"interval": "month", "usage_type": "metered", "meter": "mtr_x"},
                                "metadata": {"app": "relay", "plan_code": code, "kind": "overage"}})
        plan.stripe_price_id, plan.stripe_metered_price_id = flat["id"], metered["id"]
        found[code], found[f"{code}_overage"] = flat, metered
    db.session.commit()
    return found


def checkout(stripe, tenant, prices, code="pro", *, trial_days=0):
    """The tenant pays at Checkout: Stripe's events (session completed, subscription created, invoice paid)."""
    session = create_checkout_session(stripe, {
        "mode": "subscription", "client_reference_id": str(tenant.id), "customer_email": "owner@example.com",
        "line_items": [{"price": prices[code]["id"], "quantity": "1"}, {"price": prices[f"{code}_overage"]["id"]}],
        "subscription_data": {"metadata": {"app": "relay", "tenant_id": str(tenant.id)},
                              **({"trial_period_days": str(trial_days)} if trial_days else {})}})
    events = stripe.complete_checkout(session["id"])
    return events, events[0]["data"]["object"]["subscription"]


def deliver(client, stripe, event, **signing):
    """POST one event as Stripe would. The test's own transaction ends first (SQLite: its write lock)."""
    db.session.commit()
    body, headers = stripe.signed(event, **signing)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def subscribed(client, stripe, tenant, prices, code="pro", **kwargs):
    """A tenant whose checkout events were all delivered; the Stripe subscription's id."""
    events, sub_id = checkout(stripe, tenant, prices, code, **kwargs)
    for event in events:
        assert deliver(client, stripe, event).status_code == 200
    return sub_id


def state(tenant_id):
    db.session.expire_all()
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))


def ledger(event_id):
    db.session.expire_all()
    return db.session.get(StripeEvent, event_id)


def count(model, *where):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def changes(tenant_id):
    return count(AuditEvent, AuditEvent.tenant_id == tenant_id, AuditEvent.action == "subscription.changed")


def rights(tenant, **kwargs):
    db.session.expire_all()
    return entitlements.for_tenant(db.session.get(Tenant, tenant.id), **kwargs)


def rereads(stripe, sub_id):
    return len(stripe.requests("GET", f"/v1/subscriptions/{sub_id}"))


# -- verification ----------------------------------------------------------------------------------
def refused(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]
    assert count(StripeEvent) == 0


def test_a_signed_event_is_accepted_without_a_csrf_token(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    response = deliver(client, stripe, events[0])
    assert response.status_code == 200 and response.get_json()["received"] is True
    assert response.get_json()["duplicate"] is False


def test_a_tampered_body_is_refused_and_writes_nothing(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    body, headers = stripe.signed(events[1])
    db.session.commit()
    response = client.post("/webhooks/stripe", data=body.replace(b'"active"', b'"past_due"'), headers=headers)
    refused(response, 400, "invalid_signature")
    assert state(tenant.id).plan.code == "free" and state(tenant.id).stripe_subscription_id is None


def test_a_body_signed_with_another_secret_is_refused(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    refused(deliver(client, stripe, events[1], secret="whsec_someone_else"), 400, "invalid_signature")
    assert state(tenant.id).plan.code == "free"


def test_a_stale_signature_is_refused_but_one_within_five_minutes_is_accepted(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    refused(deliver(client, stripe, events[1], timestamp=int(time.time()) - 360), 400, "invalid_signature")
    assert deliver(client, stripe, events[1], timestamp=int(time.time()) - 240).status_code == 200
    assert state(tenant.id).plan.code == "pro"


def test_a_missing_signature_header_is_refused(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    db.session.commit()
    response = client.post("/webhooks/stripe", data=json.dumps(events[1]), content_type="application/json")
    refused(response, 400, "invalid_signature")


@pytest.mark.parametrize("body", [b"not json at all", b'["a", "list"]', b'{"id": "evt_1", "no": "type"}',
                                  b"\xff\xfe not utf-8"])
def test_a_signed_body_that_is_not_an_event_is_refused(ctx, client, stripe, body):
    refused(deliver(client, stripe, body), 400, "invalid_request")


def test_without_a_webhook_secret_nothing_is_verified_or_written(ctx, app, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    app.config["STRIPE_WEBHOOK_SECRET"] = None  # the stripe fixture puts it back
    refused(deliver(client, stripe, events[1]), 503, "billing_not_configured")
    assert state(tenant.id).plan.code == "free"


def test_without_a_stripe_key_events_are_left_for_stripe_to_retry(ctx, app, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    app.extensions["stripe"] = None  # the stripe fixture rebuilds it
    refused(deliver(client, stripe, events[0]), 503, "billing_not_configured")


# -- each event ------------------------------------------------------------------------------------
def test_checkout_completed_links_the_customer_and_applies_the_subscription(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, sub_id = checkout(stripe, tenant, prices, "pro")
    completed = events[0]
    response = deliver(client, stripe, completed)
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).stripe_customer_id == completed["data"]["object"]["customer"]
    sub = state(tenant.id)
    assert (sub.plan.code, sub.status, sub.stripe_subscription_id) == ("pro", "active", sub_id)
    assert sub.stripe_metered_item_id is not None and sub.last_event_at == from_timestamp(completed["created"])
    assert rereads(stripe, sub_id) == 1  # the session carries only the subscription's id
    row = ledger(completed["id"])
    assert row.type == "checkout.session.completed" and row.created == from_timestamp(completed["created"])
    assert row.object_id == completed["data"]["object"]["id"] and row.payload == completed
    assert row.tenant_id == tenant.id and row.attempts == 1 and row.processed_at is not None
    assert row.error is None and "Pro, active" in row.outcome
    assert rights(tenant).effective.code == "pro"
    assert count(AuditEvent, AuditEvent.action == "billing.customer_linked") == 1


def test_checkout_completed_finds_the_tenant_by_metadata_without_a_client_reference(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices, "starter")
    completed = json.loads(json.dumps(events[0]))
    completed["data"]["object"].update(client_reference_id=None, metadata={"tenant_id": str(tenant.id)})
    assert deliver(client, stripe, completed).status_code == 200
    assert state(tenant.id).plan.code == "starter"


def test_checkout_completed_links_the_customer_of_a_subscription_without_our_metadata(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, sub_id = checkout(stripe, tenant, prices, "pro")
    stripe.get(sub_id)["metadata"] = {}  # made elsewhere: only the session names the tenant
    assert deliver(client, stripe, events[0]).status_code == 200
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).stripe_customer_id == events[0]["data"]["object"]["customer"]
    assert state(tenant.id).plan.code == "pro"


def test_checkout_completed_keeps_a_customer_already_linked(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    customer = events[0]["data"]["object"]["customer"]
    tenant.stripe_customer_id = customer
    assert deliver(client, stripe, events[0]).status_code == 200
    db.session.expire_all()
    assert db.session.get(Tenant, tenant.id).stripe_customer_id == customer
    assert count(AuditEvent, AuditEvent.action == "billing.customer_linked") == 0


def test_a_payment_checkout_is_recorded_and_applies_nothing(ctx, client, stripe):
    event = stripe.event("checkout.session.completed", {"id": "cs_pay", "object": "checkout.session",
                                                          "mode": "payment", "subscription": None, "customer": None})
    assert deliver(client, stripe, event).status_code == 200
    assert "not a subscription checkout" in ledger(event["id"]).outcome


def test_subscription_created_alone_applies_it(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, sub_id = checkout(stripe, tenant, prices, "enterprise")
    assert deliver(client, stripe, events[1]).status_code == 200
    sub = state(tenant.id)
    assert (sub.plan.code, sub.status, sub.stripe_subscription_id) == ("enterprise", "active", sub_id)
    assert rereads(stripe, sub_id) == 0  # a newer snapshot is applied as it is
    assert ledger(events[1]["id"]).tenant_id == tenant.id
    assert rights(tenant).effective.code == "enterprise"


def test_a_plan_change_moves_the_tenant_to_the_new_plan(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "starter")
    items = json.loads(json.dumps(stripe.get(sub_id)["items"]))
    items["data"][0]["price"] = prices["pro"]
    assert deliver(client, stripe, stripe.subscription_event(sub_id, items=items)).status_code == 200
    assert state(tenant.id).plan.code == "pro" and state(tenant.id).stripe_price_id == prices["pro"]["id"]
    assert rights(tenant).may("broadcast")


@pytest.mark.parametrize("kind, status", [
    ("customer.subscription.updated", "unpaid"),
    ("customer.subscription.updated", "incomplete_expired"),
    ("customer.subscription.paused", "paused"),
    ("customer.subscription.deleted", "canceled"),
])
def test_statuses_without_payment_fall_back_to_free_rights(ctx, client, stripe, prices, kind, status):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    assert deliver(client, stripe, stripe.subscription_event(sub_id, kind, status=status)).status_code == 200
    assert state(tenant.id).status == status
    now = rights(tenant)
    assert (now.plan.code, now.effective.code, now.may("interactive")) == ("pro", "free", False)


def test_deleted_means_canceled_whatever_the_object_says(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    event = stripe.event("customer.subscription.deleted", {**stripe.get(sub_id), "status": "active"})
    assert deliver(client, stripe, event).status_code == 200
    assert state(tenant.id).status == "canceled" and rights(tenant).effective.code == "free"


def test_paused_then_resumed_gives_the_plan_back(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    deliver(client, stripe, stripe.subscription_event(sub_id, "customer.subscription.paused", status="paused"))
    assert rights(tenant).effective.code == "free"
    response = deliver(client, stripe, stripe.subscription_event(sub_id, "customer.subscription.resumed",
                                                                   status="active"))
    assert response.status_code == 200
    assert state(tenant.id).status == "active" and rights(tenant).effective.code == "pro"


def test_trial_will_end_is_recorded_for_the_tenant(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro", trial_days=14)
    assert state(tenant.id).status == "trialing" and rights(tenant).effective.code == "pro"
    event = stripe.subscription_event(sub_id, "customer.subscription.trial_will_end")
    assert deliver(client, stripe, event).status_code == 200
    trial_end = from_timestamp(stripe.get(sub_id)["trial_end"])
    entries = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "subscription.trial_ending")))
    assert [(e.tenant_id, e.summary) for e in entries] == [(tenant.id, f"Trial ends on {trial_end:%Y-%m-%d}")]
    assert ledger(event["id"]).outcome.startswith(f"trial ends on {trial_end:%Y-%m-%d}")
    assert state(tenant.id).trial_end == trial_end
    deliver(client, stripe, event)  # a repeat adds no second entry
    assert count(AuditEvent, AuditEvent.action == "subscription.trial_ending") == 1


def fail_payment(stripe, sub_id, *, delivered=True):
    """A renewal fails: Stripe marks the subscription past_due and says so twice, in the same second."""
    at = stripe.tick()
    return [stripe.subscription_event(sub_id, status="past_due", at=at, delivered=delivered),
            stripe.invoice_event(sub_id, "invoice.payment_failed", at=at, delivered=delivered)]


def pay(stripe, sub_id, *, delivered=True):
    at = stripe.tick()
    return [stripe.subscription_event(sub_id, status="active", at=at, delivered=delivered),
            stripe.invoice_event(sub_id, "invoice.paid", at=at, delivered=delivered)]


def test_payment_failed_starts_the_grace_period_and_paid_ends_it(ctx, app, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    updated, failed = fail_payment(stripe, sub_id)
    assert deliver(client, stripe, failed).status_code == 200  # the invoice's news alone: re-read
    sub = state(tenant.id)
    assert sub.status == "past_due" and sub.past_due_since == from_timestamp(failed["created"])
    grace = timedelta(days=app.config["PAST_DUE_GRACE_DAYS"])
    within = rights(tenant, now=sub.past_due_since + grace - timedelta(minutes=1))
    after = rights(tenant, now=sub.past_due_since + grace + timedelta(minutes=1))
    assert within.effective.code == "pro" and "payment failed" in within.notice
    assert after.effective.code == "free" and "grace" in after.notice
    deliver(client, stripe, updated)
    assert state(tenant.id).past_due_since == from_timestamp(failed["created"])
    _, paid = pay(stripe, sub_id)
    assert deliver(client, stripe, paid).status_code == 200
    sub = state(tenant.id)
    assert sub.status == "active" and sub.past_due_since is None
    assert rights(tenant).effective.code == "pro" and rights(tenant).notice is None


def test_payment_action_required_shows_the_invoice_until_it_is_paid(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    assert payment_action_needed(tenant) is None  # the checkout's invoice.paid is not a request
    event = stripe.invoice_event(sub_id, "invoice.payment_action_required")
    assert deliver(client, stripe, event).status_code == 200
    url = event["data"]["object"]["hosted_invoice_url"]
    assert url and payment_action_needed(tenant) == url
    assert ledger(event["id"]).outcome.startswith("the bank asks the customer to confirm the payment")
    assert count(AuditEvent, AuditEvent.action == "invoice.action_required", AuditEvent.tenant_id == tenant.id) == 1
    assert payment_action_needed(factories.make_tenant()) is None  # another tenant's is not shown
    paid = stripe.invoice_event(sub_id, "invoice.paid")
    deliver(client, stripe, paid)
    assert payment_action_needed(tenant) is None


def test_a_payment_in_the_same_second_settles_the_confirmation(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    at = stripe.tick()
    paid = stripe.invoice_event(sub_id, "invoice.paid", at=at)
    action = stripe.invoice_event(sub_id, "invoice.payment_action_required", at=at)
    deliver(client, stripe, paid)
    deliver(client, stripe, action)
    assert payment_action_needed(tenant) is None


def test_an_unknown_event_type_is_recorded_and_answered_200(ctx, client, stripe):
    event = stripe.event("customer.created", stripe.customer())
    response = deliver(client, stripe, event)
    assert response.status_code == 200
    row = ledger(event["id"])
    assert row.processed_at is not None and row.outcome == "not handled; recorded" and row.type == "customer.created"


def test_an_event_for_an_unknown_customer_is_recorded_and_answered_200(ctx, client, stripe, prices):
    sub = stripe.subscription(stripe.customer()["id"], [prices["pro"]])
    event = stripe.event("customer.subscription.updated", sub)
    assert deliver(client, stripe, event).status_code == 200
    row = ledger(event["id"])
    assert (row.outcome, row.tenant_id, row.attempts) == ("unknown customer", None, 1)
    assert row.processed_at is not None
    assert deliver(client, stripe, event).get_json()["duplicate"] is True
    assert ledger(event["id"]).attempts == 1


# -- once, and in any order ------------------------------------------------------------------------
def test_replayed_event_changes_nothing(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, sub_id = checkout(stripe, tenant, prices, "pro")
    first = deliver(client, stripe, events[0])
    audit_before = count(AuditEvent)
    again = deliver(client, stripe, events[0])
    assert first.get_json()["duplicate"] is False
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert again.get_json()["outcome"] == first.get_json()["outcome"]
    assert rereads(stripe, sub_id) == 1 and ledger(events[0]["id"]).attempts == 1
    assert count(AuditEvent) == audit_before and count(StripeEvent) == 1


def test_an_older_event_changes_nothing(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    older = stripe.subscription_event(sub_id, cancel_at_period_end=True)
    newer = stripe.subscription_event(sub_id, status="past_due", cancel_at_period_end=False)
    deliver(client, stripe, newer)
    reads = rereads(stripe, sub_id)
    assert deliver(client, stripe, older).status_code == 200
    sub = state(tenant.id)
    assert (sub.status, sub.cancel_at_period_end) == ("past_due", False)
    assert "older" in ledger(older["id"]).outcome and rereads(stripe, sub_id) == reads


def test_an_older_invoice_event_is_not_even_read_again(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    old_failure = stripe.invoice_event(sub_id, "invoice.payment_failed")
    deliver(client, stripe, stripe.subscription_event(sub_id, cancel_at_period_end=True))
    reads = rereads(stripe, sub_id)
    assert deliver(client, stripe, old_failure).status_code == 200
    assert rereads(stripe, sub_id) == reads and "older" in ledger(old_failure["id"]).outcome
    assert state(tenant.id).status == "active"


def test_events_of_the_same_second_read_the_subscription_again(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    at = stripe.tick()
    went_past_due = stripe.subscription_event(sub_id, status="past_due", at=at)
    recovered = stripe.subscription_event(sub_id, status="active", at=at)
    deliver(client, stripe, recovered)
    reads = rereads(stripe, sub_id)
    # Which of the two came last cannot be told from `created`: Stripe says active now.
    assert deliver(client, stripe, went_past_due).status_code == 200
    assert rereads(stripe, sub_id) == reads + 1
    assert state(tenant.id).status == "active"


def sequence(stripe, tenant, prices, *, end="canceled"):
    """A subscription's life as Stripe tells it: checkout, a failed and a recovered payment, a plan change, its end."""
    events, sub_id = checkout(stripe, tenant, prices, "starter")
    events += fail_payment(stripe, sub_id)
    events += pay(stripe, sub_id)
    items = json.loads(json.dumps(stripe.get(sub_id)["items"]))
    items["data"][0]["price"] = prices["pro"]
    events.append(stripe.subscription_event(sub_id, items=items))
    if end == "canceled":
        # Two events of one second: only Stripe knows which state is the last.
        at = stripe.tick()
        events.append(stripe.subscription_event(sub_id, cancel_at_period_end=True, at=at))
        events.append(stripe.subscription_event(sub_id, "customer.subscription.deleted", status="canceled", at=at))
    else:
        events += fail_payment(stripe, sub_id)
    return events


STATE = ("plan_id", "status", "stripe_subscription_id", "current_period_start", "current_period_end",
         "cancel_at_period_end", "trial_end", "last_event_at", "past_due_since", "stripe_price_id",
         "stripe_metered_item_id")


def final_state(tenant_id):
    sub = state(tenant_id)
    return {name: getattr(sub, name) for name in STATE} | {
        "customer": db.session.get(Tenant, tenant_id).stripe_customer_id}


def start_over(tenant_id):
    """Forget everything Stripe told us about the tenant, to deliver the same events again."""
    db.session.execute(delete(StripeEvent))
    db.session.execute(delete(Subscription).where(Subscription.tenant_id == tenant_id))
    tenant = db.session.get(Tenant, tenant_id)
    tenant.stripe_customer_id = None
    start_subscription(tenant)
    db.session.commit()


@pytest.mark.parametrize("end, status, plan, shuffles", [("canceled", "canceled", "pro", 30),
                                                         ("past_due", "past_due", "pro", 10)])
def test_any_delivery_order_ends_in_the_state_of_in_order_delivery(ctx, client, stripe, prices, end, status, plan,
                                                                   shuffles):
    tenant = factories.make_tenant()
    events = sequence(stripe, tenant, prices, end=end)
    for event in events:
        assert deliver(client, stripe, event).status_code == 200
    expected = final_state(tenant.id)
    assert (state(tenant.id).plan.code, state(tenant.id).status) == (plan, status)
    if end == "past_due":
        assert expected["past_due_since"] == from_timestamp(events[-1]["created"])
    shuffler = random.Random(20260501)
    for attempt in range(shuffles):
        start_over(tenant.id)
        order = events[:]
        shuffler.shuffle(order)
        for event in order:
            assert deliver(client, stripe, event).status_code == 200
        assert final_state(tenant.id) == expected, [e["type"] for e in order]
        assert count(StripeEvent, StripeEvent.processed_at.is_not(None)) == len(events)
    assert all(deliver(client, stripe, e).get_json()["duplicate"] for e in events)
    assert final_state(tenant.id) == expected


# -- failures --------------------------------------------------------------------------------------
def assert_left_for_retry(response, event_id, error):
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "event_failed"
    row = ledger(event_id)
    assert row.processed_at is None and row.attempts == 1 and error in row.error


@pytest.mark.parametrize("failure", ["answers 500", "times out"])
def test_stripe_failing_on_the_reread_answers_500_and_the_retry_applies_once(ctx, client, stripe, prices, failure):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    updated, failed = fail_payment(stripe, sub_id)
    if failure == "answers 500":
        stripe.fail("GET", f"/v1/subscriptions/{sub_id}", status=500)
    else:
        stripe.delay("GET", f"/v1/subscriptions/{sub_id}", seconds=3)  # the client gives up after 2 s
    assert_left_for_retry(deliver(client, stripe, failed), failed["id"],
                          "APIError" if failure == "answers 500" else "APIConnectionError")
    assert state(tenant.id).status == "active"
    audit_before = changes(tenant.id)
    retry = deliver(client, stripe, failed)
    assert retry.status_code == 200 and retry.get_json()["duplicate"] is False
    row = ledger(failed["id"])
    assert row.processed_at is not None and row.attempts == 2 and row.error is None
    assert state(tenant.id).status == "past_due" and changes(tenant.id) == audit_before + 1
    assert deliver(client, stripe, failed).get_json()["duplicate"] is True
    assert changes(tenant.id) == audit_before + 1


def test_a_database_error_answers_500_and_the_retry_applies_once(ctx, client, stripe, prices, monkeypatch):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    event = stripe.subscription_event(sub_id, status="unpaid")
    real = stripe_events.apply_stripe_subscription
    calls = []

    def failing_once(obj, **kwargs):
        calls.append(obj["id"])
        if len(calls) == 1:
            raise OperationalError("UPDATE subscriptions", {}, Exception("server closed the connection"))
        return real(obj, **kwargs)

    monkeypatch.setattr(stripe_events, "apply_stripe_subscription", failing_once)
    assert_left_for_retry(deliver(client, stripe, event), event["id"], "OperationalError")
    assert state(tenant.id).status == "active"
    assert deliver(client, stripe, event).status_code == 200
    assert state(tenant.id).status == "unpaid" and ledger(event["id"]).attempts == 2
    assert rights(tenant).effective.code == "free"


def test_an_attempt_that_died_silently_holds_the_event_only_for_a_while(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    event = stripe.subscription_event(sub_id, status="unpaid")
    # A process was killed while applying it: claimed, no error noted, never processed.
    db.session.add(StripeEvent(id=event["id"], type=event["type"], created=from_timestamp(event["created"]),
                               payload=event, attempts=1, received_at=utcnow() - timedelta(minutes=1)))
    response = deliver(client, stripe, event)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "event_in_progress"
    assert state(tenant.id).status == "active" and ledger(event["id"]).attempts == 1
    ledger(event["id"]).received_at = utcnow() - billing_webhooks.CLAIM_EXPIRES - timedelta(seconds=1)
    assert deliver(client, stripe, event).status_code == 200
    assert state(tenant.id).status == "unpaid" and ledger(event["id"]).attempts == 2


@pytest.mark.postgres_only
def test_concurrent_deliveries_of_one_event_apply_it_once(pg_only, app, client, stripe, prices):
    with app.app_context():
        tenant_id = factories.make_tenant().id
        sub_id = subscribed(client, stripe, db.session.get(Tenant, tenant_id), prices, "pro")
        _, failed = fail_payment(stripe, sub_id)
        body, headers = stripe.signed(failed)
        before = changes(tenant_id)
        db.session.remove()
    reads = rereads(stripe, sub_id)
    # The first claim holds the event through a slow re-read: every other delivery meets it in progress.
    stripe.delay("GET", f"/v1/subscriptions/{sub_id}", seconds=1)
    answers = run_in_parallel(app, [lambda c: c.post("/webhooks/stripe", data=body, headers=headers)] * THREADS)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * (THREADS - 1), statuses
    assert {a.get_json()["error"]["code"] for a in answers if a.status_code == 409} == {"event_in_progress"}
    assert rereads(stripe, sub_id) == reads + 1
    with app.app_context():
        row = ledger(failed["id"])
        assert row.attempts == 1 and row.processed_at is not None
        assert changes(tenant_id) == before + 1 and state(tenant_id).status == "past_due"
        db.session.remove()
    # Stripe's retry of a 409 finds it done.
    again = client.post("/webhooks/stripe", data=body, headers=headers)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True


@pytest.mark.postgres_only
def test_racing_deliveries_apply_each_event_once(pg_only, app, client, stripe, prices):
    with app.app_context():
        tenant_id = factories.make_tenant().id
        sub_id = subscribed(client, stripe, db.session.get(Tenant, tenant_id), prices, "pro")
        db.session.remove()
    for status in ("unpaid", "active", "past_due", "active", "canceled"):
        with app.app_context():
            event = stripe.subscription_event(sub_id, status=status)
            body, headers = stripe.signed(event)
            before = changes(tenant_id)
            db.session.remove()
        answers = run_in_parallel(app, [lambda c: c.post("/webhooks/stripe", data=body, headers=headers)] * THREADS)
        applied = [a for a in answers if a.status_code == 200 and not a.get_json()["duplicate"]]
        others = {(a.status_code, a.get_json().get("duplicate") or a.get_json().get("error", {}).get("code"))
                  for a in answers if a not in applied}
        assert len(applied) == 1 and others <= {(200, True), (409, "event_in_progress")}, others
        with app.app_context():
            assert ledger(event["id"]).attempts == 1
            assert changes(tenant_id) == before + 1 and state(tenant_id).status == status
            db.session.remove()


def test_the_portal_links_to_the_invoice_the_bank_wants_confirmed(app, ctx, client, stripe, prices):
    from tests.conftest import AuthActions

    tenant = factories.make_tenant(email="confirm@acme.example.com")
    sub_id = subscribed(client, stripe, tenant, prices, "pro")
    auth = AuthActions(client)
    auth.login("confirm@acme.example.com")
    assert 'id="payment-action"' not in client.get("/dashboard").get_data(as_text=True)
    event = stripe.invoice_event(sub_id, "invoice.payment_action_required")
    deliver(client, stripe, event)
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'id="payment-action"' in page and event["data"]["object"]["hosted_invoice_url"] in page
    deliver(client, stripe, stripe.invoice_event(sub_id, "invoice.paid"))
    assert 'id="payment-action"' not in client.get("/dashboard").get_data(as_text=True)
