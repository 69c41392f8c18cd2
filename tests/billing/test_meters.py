"""One Billing Meter per priced unit: a plan's metered price counts the meter of the unit it prices.

The rules (saas.billing.meters): conversation plans' metered prices go on the
meter of STRIPE_METER_EVENT_NAME, per-message plans' on the meter of
STRIPE_MESSAGES_METER_EVENT_NAME; each meter is found by its event name or
created once, named for what it counts; a plan whose unit changes gets a new
metered price on the other meter; and a plan tenants pay for through Stripe
keeps its unit.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from saas.billing.catalog import PlanError, update_plan
from saas.billing.models import Plan, Subscription
from saas.extensions import db
from tests import factories
from tests.billing.test_catalog import PAID, creates, plan, prices, sync

MESSAGES_TERMS = {"billing_unit": "messages", "included_messages": 500, "message_categories": ["marketing"]}


def add_bulk_plan() -> None:
    """A plan on sale billed per marketing or utility message, with an overage price."""
    db.session.add(Plan(code="bulk", name="Bulk", price_cents=4900, currency="usd", interval="month",
                        billing_unit="messages", included_messages=1000, message_categories=["marketing", "utility"],
                        overage_cents=Decimal("0.8"), features=["text", "template"], sort_order=15, active=True))
    db.session.commit()


def meters_by_event(stripe) -> dict[str, dict]:
    return {m["event_name"]: m for m in stripe.of_kind("billing.meter")}


def test_a_per_message_plans_metered_price_counts_the_messages_meter(ctx, stripe):
    add_bulk_plan()

    lines = sync()

    meter_calls = stripe.requests("POST", "/v1/billing/meters")
    assert [c.params["event_name"] for c in meter_calls] == ["whatsapp_conversations", "whatsapp_messages"]
    assert meter_calls[1].params == {
        "display_name": "WhatsApp messages of priced categories past the plan's included ones",
        "event_name": "whatsapp_messages", "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"}}
    assert meter_calls[1].idempotency_key == "meter-whatsapp_messages"
    meters = meters_by_event(stripe)
    conversations, messages = meters["whatsapp_conversations"]["id"], meters["whatsapp_messages"]["id"]

    bulk = plan("bulk")
    metered = stripe.objects[bulk.stripe_metered_price_id]
    assert (metered["recurring"]["usage_type"], metered["recurring"]["meter"]) == ("metered", messages)
    assert (metered["lookup_key"], metered["unit_amount_decimal"]) == ("bulk_overage", "0.8")
    assert bulk.stripe_meter_id == messages
    for code in PAID:
        assert stripe.objects[plan(code).stripe_metered_price_id]["recurring"]["meter"] == conversations
        assert plan(code).stripe_meter_id == conversations
    assert f"lookup key bulk_overage, meter {messages})" in lines[2]
    assert f"meter {messages} (event whatsapp_messages)" in lines[2]

    stripe.calls.clear()
    assert sync()[2] == "bulk: unchanged" and stripe.requests("POST") == []


def test_the_messages_meter_event_name_comes_from_the_settings(app, ctx, stripe):
    add_bulk_plan()
    app.config["STRIPE_MESSAGES_METER_EVENT_NAME"] = "messages_v2"
    try:
        sync()
    finally:
        app.config["STRIPE_MESSAGES_METER_EVENT_NAME"] = "whatsapp_messages"
    assert sorted(meters_by_event(stripe)) == ["messages_v2", "whatsapp_conversations"]
    assert stripe.objects[plan("bulk").stripe_metered_price_id]["recurring"]["meter"] == \
        meters_by_event(stripe)["messages_v2"]["id"]


def test_an_existing_messages_meter_is_found_by_its_event_name(ctx, stripe):
    from tests.billing.stripe_fake import create_meter

    add_bulk_plan()
    found = create_meter(stripe, {"display_name": "Messages", "event_name": "whatsapp_messages",
                                  "default_aggregation": {"formula": "sum"}})

    sync()

    assert [c.params["event_name"] for c in stripe.requests("POST", "/v1/billing/meters")] == [
        "whatsapp_conversations"]
    assert plan("bulk").stripe_meter_id == found["id"]
    assert stripe.objects[plan("bulk").stripe_metered_price_id]["recurring"]["meter"] == found["id"]


def test_a_plan_whose_unit_changes_gets_a_new_metered_price_on_the_other_meter(ctx, stripe):
    sync()
    old_price = plan("starter").stripe_metered_price_id

    update_plan(plan("starter"), MESSAGES_TERMS, actor="cli")
    assert plan("starter").stripe_synced_at is None  # the unit decides the meter: Stripe holds it
    stripe.calls.clear()
    sync(plans=[plan("starter")])

    starter = plan("starter")
    messages = meters_by_event(stripe)["whatsapp_messages"]["id"]
    new = stripe.objects[starter.stripe_metered_price_id]
    assert new["id"] != old_price and new["recurring"]["meter"] == messages
    assert new["lookup_key"] == "starter_overage" and starter.stripe_meter_id == messages
    assert (stripe.objects[old_price]["active"], stripe.objects[old_price]["lookup_key"]) == (False, None)
    assert [c.path for c in creates(stripe)] == ["/v1/billing/meters", "/v1/prices"]
    assert len(prices(stripe, active=True, product=starter.stripe_product_id)) == 2  # flat and overage


def test_a_plan_tenants_pay_for_through_stripe_keeps_its_unit(ctx, stripe):
    tenant = factories.make_tenant("starter")
    subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
    subscription.stripe_subscription_id = "sub_paying"
    db.session.commit()

    with pytest.raises(PlanError) as refused:
        update_plan(plan("starter"), MESSAGES_TERMS, actor="cli")

    assert refused.value.field == "billing_unit"
    assert "it keeps its unit" in refused.value.message
    assert plan("starter").billing_unit == "conversations"
    # Other terms still change; and once the subscription has ended, so may the unit.
    assert update_plan(plan("starter"), {"billing_unit": "conversations", "included_messages": 500},
                       actor="cli") == ["included_messages"]
    subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
    subscription.status = "canceled"
    db.session.commit()
    assert "billing_unit" in update_plan(plan("starter"), MESSAGES_TERMS, actor="cli")
