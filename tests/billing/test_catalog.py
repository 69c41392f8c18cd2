"""The plans on Stripe: `flask plans sync` / sync_plans against the loopback Stripe."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from saas.audit.models import AuditEvent
from saas.billing import stripe_client
from saas.billing.catalog import archive_plan, plan_by_code, plan_for_price, update_plan
from saas.billing.models import Plan, Subscription
from saas.billing.services import apply_stripe_subscription
from saas.billing.stripe_catalog import CatalogSyncFailed, sync_plan, sync_plans
from saas.extensions import db
from saas.timeutil import from_timestamp
from tests import factories

PAID = ("starter", "pro", "enterprise")
STRIPE_IDS = dict(stripe_product_id=None, stripe_price_id=None, stripe_metered_price_id=None, stripe_meter_id=None)


def sync(**kwargs):
    return sync_plans(stripe_client.client(), **kwargs)


def creates(stripe):
    """Every create the app sent: POST to a collection (not to an object's own path)."""
    return [c for c in stripe.requests("POST") if c.path in ("/v1/products", "/v1/prices", "/v1/billing/meters")]


def updates(stripe):
    return [c for c in stripe.requests("POST") if c not in creates(stripe)]


def prices(stripe, **match):
    return [p for p in stripe.of_kind("price") if all(p.get(k) == v for k, v in match.items())]


def plan(code) -> Plan:
    db.session.expire_all()
    return plan_by_code(code)


def forget_local_ids():
    db.session.execute(update(Plan).values(**STRIPE_IDS))
    db.session.commit()


# -- from empty -----------------------------------------------------------------------------

def test_sync_from_empty_creates_a_product_prices_and_one_meter_per_the_conventions(ctx, stripe):
    lines = sync()

    products = stripe.of_kind("product")
    assert sorted(p["metadata"]["plan_code"] for p in products) == sorted(PAID)
    for product in products:
        spec = plan(product["metadata"]["plan_code"])
        assert product["metadata"] == {"app": "relay", "plan_code": spec.code}
        assert (product["name"], product["description"]) == (spec.name, spec.description)

    meter_calls = stripe.requests("POST", "/v1/billing/meters")
    assert len(meter_calls) == 1
    assert meter_calls[0].params == {
        "display_name": "WhatsApp conversations past the plan's included ones", "event_name": "whatsapp_conversations",
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"}}
    assert meter_calls[0].idempotency_key == "meter-whatsapp_conversations"
    meter_id = stripe.of_kind("billing.meter")[0]["id"]

    price_calls = stripe.requests("POST", "/v1/prices")
    assert len(price_calls) == 6 and len(stripe.of_kind("price")) == 6
    for code in PAID:
        spec = plan(code)
        flat = next(c for c in price_calls if c.params["lookup_key"] == code)
        assert flat.params == {
            "product": spec.stripe_product_id, "currency": "usd", "unit_amount": str(spec.price_cents),
            "lookup_key": code, "transfer_lookup_key": "true",
            "recurring": {"interval": "month", "interval_count": "1", "usage_type": "licensed"},
            "metadata": {"app": "relay", "plan_code": code, "kind": "flat"}}
        assert flat.idempotency_key == (f"plan-{code}-flat-price-{spec.price_cents}-usd-month-"
                                        f"{spec.stripe_product_id}-after-none")
        metered = next(c for c in price_calls if c.params["lookup_key"] == f"{code}_overage")
        assert metered.params == {
            "product": spec.stripe_product_id, "currency": "usd", "unit_amount_decimal": str(spec.overage_cents),
            "billing_scheme": "per_unit", "lookup_key": f"{code}_overage", "transfer_lookup_key": "true",
            "recurring": {"interval": "month", "interval_count": "1", "usage_type": "metered", "meter": meter_id},
            "metadata": {"app": "relay", "plan_code": code, "kind": "overage"}}
        assert metered.idempotency_key.startswith(f"plan-{code}-overage-price-{spec.overage_cents}-{meter_id}-usd")
        # The ids are stored on the plan; the meter is one, shared.
        assert prices(stripe, lookup_key=code)[0]["id"] == spec.stripe_price_id
        assert prices(stripe, lookup_key=f"{code}_overage")[0]["id"] == spec.stripe_metered_price_id
        assert spec.stripe_meter_id == meter_id
        assert spec.stripe_synced_at is not None and spec.stripe_sync_error is None

    product_calls = stripe.requests("POST", "/v1/products")
    assert sorted(c.idempotency_key for c in product_calls) == sorted(f"plan-{code}-product" for code in PAID)
    assert all(c.idempotency_key for c in creates(stripe))
    assert updates(stripe) == []
    assert {c.stripe_version for c in stripe.calls} == {"2026-10-28.endive"}

    free = plan("free")
    assert (free.stripe_product_id, free.stripe_price_id) == (None, None)
    assert lines[0] == "free: free, not sold through Stripe"
    pro = plan("pro")
    assert lines[2] == (f"pro: created product {pro.stripe_product_id}, price {pro.stripe_price_id} (lookup key pro), "
                        f"price {pro.stripe_metered_price_id} (lookup key pro_overage, meter {meter_id})")
    assert f"meter {meter_id} (event whatsapp_conversations)" in lines[1]


def test_a_hard_cap_plan_gets_no_meter_and_no_metered_price(ctx, stripe):
    update_plan(plan("starter"), {"overage_cents": None}, actor="cli")
    sync()
    starter = plan("starter")
    assert starter.stripe_price_id and starter.stripe_metered_price_id is None
    assert prices(stripe, lookup_key="starter_overage") == []
    assert len(stripe.of_kind("billing.meter")) == 1  # made for pro


def test_the_meter_event_name_comes_from_the_settings(app, ctx, stripe):
    app.config["STRIPE_METER_EVENT_NAME"] = "conversations_v2"
    try:
        sync()
    finally:
        app.config["STRIPE_METER_EVENT_NAME"] = "whatsapp_conversations"
    assert [m["event_name"] for m in stripe.of_kind("billing.meter")] == ["conversations_v2"]


# -- twice, and changes ---------------------------------------------------------------------

def test_a_second_sync_makes_no_create_or_update_calls(ctx, stripe):
    sync()
    stripe.calls.clear()
    lines = sync()
    assert stripe.requests("POST") == []
    assert lines == ["free: free, not sold through Stripe", "starter: unchanged", "pro: unchanged",
                     "enterprise: unchanged"]


def test_a_new_amount_makes_a_new_price_that_takes_the_lookup_key_and_archives_the_old(ctx, stripe):
    sync()
    old_id = plan("pro").stripe_price_id
    update_plan(plan("pro"), {"price_cents": 12900}, actor="cli")
    stripe.calls.clear()
    lines = sync(plans=[plan("pro")])

    [create] = creates(stripe)
    assert create.path == "/v1/prices"
    assert create.params["unit_amount"] == "12900" and create.params["transfer_lookup_key"] == "true"
    assert create.params["lookup_key"] == "pro"
    assert create.idempotency_key.startswith("plan-pro-flat-price-12900-usd-month-")
    new_id = plan("pro").stripe_price_id
    assert new_id != old_id
    old, new = stripe.objects[old_id], stripe.objects[new_id]
    assert (old["active"], old["lookup_key"]) == (False, None)
    assert (new["active"], new["lookup_key"], new["unit_amount"]) == (True, "pro", 12900)
    assert [c.params for c in updates(stripe)] == [{"active": "false"}]
    assert lines == [f"pro: created price {new_id} (lookup key pro); archived price {old_id}"]
    # The overage price was right already: untouched.
    assert len(prices(stripe, lookup_key="pro_overage")) == 1

    stripe.calls.clear()
    assert sync(plans=[plan("pro")]) == ["pro: unchanged"] and stripe.requests("POST") == []


def test_going_back_to_an_earlier_amount_makes_a_new_price_not_a_replay_of_the_old(ctx, stripe):
    sync()
    first = plan("pro").stripe_price_id
    update_plan(plan("pro"), {"price_cents": 12900}, actor="cli")
    sync()
    update_plan(plan("pro"), {"price_cents": 9900}, actor="cli")
    sync()
    third = plan("pro").stripe_price_id
    assert third != first
    assert stripe.objects[third]["active"] and stripe.objects[third]["lookup_key"] == "pro"
    assert [p["id"] for p in prices(stripe, lookup_key="pro")] == [third]
    assert len(prices(stripe, active=True, product=plan("pro").stripe_product_id)) == 2  # flat and overage


def test_new_overage_currency_or_interval_replace_the_prices(ctx, stripe):
    sync()
    before = {p["id"] for p in stripe.of_kind("price")}
    update_plan(plan("enterprise"), {"overage_cents": 2, "currency": "eur", "interval": "year"}, actor="cli")
    sync(plans=[plan("enterprise")])
    enterprise = plan("enterprise")
    flat, metered = stripe.objects[enterprise.stripe_price_id], stripe.objects[enterprise.stripe_metered_price_id]
    assert {flat["id"], metered["id"]}.isdisjoint(before)
    assert (flat["currency"], flat["recurring"]["interval"]) == ("eur", "year")
    assert (metered["unit_amount_decimal"], metered["currency"], metered["recurring"]["interval"]) == ("2", "eur", "year")
    assert metered["lookup_key"] == "enterprise_overage"
    live = prices(stripe, active=True, product=enterprise.stripe_product_id)
    assert sorted(p["id"] for p in live) == sorted([flat["id"], metered["id"]])


def test_a_new_name_or_description_updates_the_product_only(ctx, stripe):
    sync()
    update_plan(plan("starter"), {"name": "Starter 2", "description": ""}, actor="cli")
    stripe.calls.clear()
    lines = sync(plans=[plan("starter")])
    product_id = plan("starter").stripe_product_id
    assert creates(stripe) == []
    assert [(c.path, c.params) for c in updates(stripe)] == [
        (f"/v1/products/{product_id}", {"name": "Starter 2", "description": ""})]
    assert stripe.objects[product_id]["name"] == "Starter 2" and stripe.objects[product_id]["description"] is None
    assert lines == [f"starter: updated product {product_id} (description, name)"]


def test_a_plan_turned_hard_cap_stops_offering_its_metered_price(ctx, stripe):
    sync()
    metered = plan("pro").stripe_metered_price_id
    update_plan(plan("pro"), {"overage_cents": None}, actor="cli")
    sync(plans=[plan("pro")])
    assert plan("pro").stripe_metered_price_id is None
    assert stripe.objects[metered]["active"] is False


def test_archived_plans_create_nothing_and_keep_their_prices_active(ctx, stripe):
    archive_plan(plan("enterprise"), actor="cli")
    sync()
    assert "enterprise" not in {p["metadata"]["plan_code"] for p in stripe.of_kind("product")}
    assert plan("enterprise").stripe_product_id is None

    archive_plan(plan("pro"), actor="cli")  # synced while on sale, archived now
    stripe.calls.clear()
    lines = sync()
    assert stripe.requests("POST") == []
    pro = plan("pro")
    assert stripe.objects[pro.stripe_price_id]["active"] and stripe.objects[pro.stripe_metered_price_id]["active"]
    assert "pro: archived; nothing created" in lines[2]


# -- finding what exists --------------------------------------------------------------------

def test_a_sync_after_the_local_ids_were_lost_finds_everything_and_duplicates_nothing(ctx, stripe):
    sync()
    kept = {code: (p.stripe_product_id, p.stripe_price_id, p.stripe_metered_price_id, p.stripe_meter_id)
            for code in PAID for p in [plan(code)]}
    forget_local_ids()
    stripe.forget_idempotency_keys()  # a day later: no key replays to lean on
    stripe.calls.clear()
    lines = sync()
    assert stripe.requests("POST") == []
    assert {code: (p.stripe_product_id, p.stripe_price_id, p.stripe_metered_price_id, p.stripe_meter_id)
            for code in PAID for p in [plan(code)]} == kept
    assert lines[1].startswith(f"starter: found product {kept['starter'][0]}, price {kept['starter'][1]}")
    assert (len(stripe.of_kind("product")), len(stripe.of_kind("price")), len(stripe.of_kind("billing.meter"))) == (3, 6, 1)


def test_a_product_without_prices_is_found_by_its_metadata(ctx, stripe):
    stripe.fail("POST", "/v1/prices")
    with pytest.raises(CatalogSyncFailed):
        sync(plans=[plan("starter")])
    product_id = plan("starter").stripe_product_id
    assert product_id and plan("starter").stripe_price_id is None
    forget_local_ids()
    stripe.forget_idempotency_keys()
    sync(plans=[plan("starter")])
    assert plan("starter").stripe_product_id == product_id
    assert len(stripe.of_kind("product")) == 1


def test_an_existing_meter_is_found_by_its_event_name_and_reactivated(ctx, stripe):
    from tests.billing.stripe_fake import create_meter

    meter = create_meter(stripe, {"display_name": "Old", "event_name": "whatsapp_conversations",
                                  "default_aggregation": {"formula": "sum"}})
    meter["status"] = "inactive"
    sync()
    assert stripe.requests("POST", "/v1/billing/meters") == [
        c for c in stripe.requests("POST", "/v1/billing/meters") if c.path.endswith("/reactivate")]
    assert len(stripe.requests("POST", f"/v1/billing/meters/{meter['id']}/reactivate")) == 1
    assert meter["status"] == "active"
    assert {plan(code).stripe_meter_id for code in PAID} == {meter["id"]}


def test_a_price_whose_lookup_key_was_moved_away_gets_it_back(ctx, stripe):
    sync()
    flat_id = plan("pro").stripe_price_id
    stripe.objects[flat_id]["lookup_key"] = None  # someone moved it by hand
    stripe.calls.clear()
    sync(plans=[plan("pro")])
    assert creates(stripe) == []
    assert [c.params for c in updates(stripe)] == [{"lookup_key": "pro", "transfer_lookup_key": "true"}]
    assert stripe.objects[flat_id]["lookup_key"] == "pro"


# -- Stripe failing -------------------------------------------------------------------------

def test_stripe_failing_mid_sync_keeps_what_was_created_and_a_rerun_finishes_without_duplicates(ctx, stripe):
    stripe.fail("POST", "/v1/billing/meters", status=500)
    with pytest.raises(CatalogSyncFailed) as failed:
        sync()
    starter = plan("starter")
    assert starter.stripe_product_id and starter.stripe_price_id  # created before the failure, stored
    assert starter.stripe_meter_id is None and starter.stripe_metered_price_id is None
    assert starter.stripe_synced_at is None and "HTTP 500" in starter.stripe_sync_error
    assert plan("pro").stripe_product_id is None  # the sync stopped there
    assert failed.value.lines[0] == "free: free, not sold through Stripe"
    assert failed.value.lines[1] == (f"starter: created product {starter.stripe_product_id}, "
                                     f"price {starter.stripe_price_id} (lookup key starter) (then Stripe failed)")
    assert "run the sync again" in failed.value.message

    sync()
    assert (len(stripe.of_kind("product")), len(stripe.of_kind("price")), len(stripe.of_kind("billing.meter"))) == (3, 6, 1)
    assert plan("starter").stripe_product_id == starter.stripe_product_id
    assert plan("starter").stripe_sync_error is None and plan("starter").stripe_synced_at is not None


@pytest.mark.parametrize("column, answered", [
    ("stripe_product_id", "prod_1\x00"),
    ("stripe_meter_id", "meter_" + "x" * 250),
    ("stripe_meter_id", "meter 1"),
])
def test_an_id_our_columns_cannot_hold_fails_the_sync_and_is_not_stored(ctx, stripe, column, answered):
    sync(plans=[plan("pro")])
    kept = getattr(plan("pro"), column)
    stripe.objects[kept]["id"] = answered  # what Stripe answers when the stored id is read back
    with pytest.raises(CatalogSyncFailed) as failed:
        sync(plans=[plan("pro")])
    assert "not a Stripe id" in failed.value.reason
    pro = plan("pro")
    assert getattr(pro, column) == kept and pro.stripe_synced_at is None
    assert pro.stripe_sync_error.startswith("Stripe failed: it answered a ")


def test_a_timeout_mid_sync_leaves_stored_ids_and_a_rerun_adopts_what_stripe_made(ctx, stripe):
    stripe.delay("POST", "/v1/prices", seconds=3)  # the client gives up after 2 s; Stripe carries on
    with pytest.raises(CatalogSyncFailed) as failed:
        sync(plans=[plan("starter")])
    assert "could not reach Stripe" in failed.value.message
    assert plan("starter").stripe_product_id and plan("starter").stripe_price_id is None
    deadline = time.monotonic() + 5
    while not stripe.of_kind("price") and time.monotonic() < deadline:
        time.sleep(0.05)
    made = stripe.of_kind("price")[0]["id"]

    lines = sync(plans=[plan("starter")])
    assert plan("starter").stripe_price_id == made
    assert f"found price {made} (lookup key starter)" in lines[0]
    assert len(prices(stripe, lookup_key="starter")) == 1 and len(stripe.of_kind("price")) == 2


def test_a_failure_stripe_replays_for_the_same_key_is_retried_under_a_new_one(ctx, stripe):
    # Stripe keeps a 500 under its idempotency key for a day: the rerun must not be stuck on it.
    stripe.fail("POST", "/v1/products", saved=True)
    with pytest.raises(CatalogSyncFailed):
        sync(plans=[plan("starter")])
    sync(plans=[plan("starter")])
    keys = [c.idempotency_key for c in stripe.requests("POST", "/v1/products")]
    assert keys[:2] == ["plan-starter-product", "plan-starter-product"]
    assert keys[2].startswith("plan-starter-product-after-req_")
    assert len(stripe.of_kind("product")) == 1 and plan("starter").stripe_product_id


def test_sync_records_an_audit_entry_for_what_changed(ctx, stripe):
    sync(actor="cli")
    sync(actor="cli")  # unchanged: nothing more to record
    entries = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "plan.synced")).all()
    assert sorted(e.details["plan_code"] for e in entries) == sorted(PAID)
    assert all(e.actor == "cli" for e in entries)
    sync_plan(stripe_client.client(), plan("pro"), actor="cli", audit_unchanged=True)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "plan.synced")
                             .order_by(AuditEvent.id.desc()).limit(1)).summary == \
        "Synced plan pro to Stripe: unchanged"


# -- the command ----------------------------------------------------------------------------

def test_plans_sync_without_stripe_configured_exits_non_zero_and_says_why(app, runner):
    result = runner.invoke(args=["plans", "sync"])
    assert result.exit_code == 1
    assert "STRIPE_SECRET_KEY is not set" in result.output


def test_plans_sync_prints_what_changed_per_plan(app, runner, stripe):
    result = runner.invoke(args=["plans", "sync"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        pro = plan_by_code("pro")
        expected = f"pro: created product {pro.stripe_product_id}, price {pro.stripe_price_id} (lookup key pro)"
        db.session.remove()
    assert expected in result.output
    again = runner.invoke(args=["plans", "sync", "--plan", "starter"])
    assert again.exit_code == 0 and again.output.strip() == "starter: unchanged"


def test_plans_sync_exits_non_zero_when_stripe_fails(app, runner, stripe):
    stripe.fail("POST", "/v1/products", status=500)
    result = runner.invoke(args=["plans", "sync"])
    assert result.exit_code == 1
    assert "free: free, not sold through Stripe" in result.output
    assert "Error: starter: Stripe failed (HTTP 500" in result.output
    unknown = runner.invoke(args=["plans", "sync", "--plan", "gold"])
    assert unknown.exit_code == 1 and "No plan with code gold" in unknown.output


# -- plan_for_price -------------------------------------------------------------------------

def test_plan_for_price_by_id_by_lookup_key_and_by_metadata(ctx, stripe):
    sync()
    pro = plan("pro")
    assert plan_for_price(pro.stripe_price_id).code == "pro"
    assert plan_for_price(pro.stripe_metered_price_id).code == "pro"
    assert plan_for_price("price_unknown", "pro").code == "pro"
    assert plan_for_price(None, "enterprise_overage").code == "enterprise"
    assert plan_for_price("price_unknown", "gold") is None
    # A price replaced by a new amount has lost its lookup key; its metadata still names the plan.
    old = stripe.objects[pro.stripe_price_id]
    update_plan(pro, {"price_cents": 12900}, actor="cli")
    sync()
    assert plan_for_price(old["id"], old["lookup_key"]) is None
    assert plan_for_price(old["id"], old["lookup_key"], metadata=old["metadata"]).code == "pro"


def test_a_subscriber_on_a_replaced_price_keeps_its_plan(ctx, stripe):
    sync()
    tenant = factories.make_tenant()
    customer = stripe.customer(tenant_id=str(tenant.id))
    tenant.stripe_customer_id = customer["id"]
    db.session.commit()
    old_price = stripe.objects[plan("pro").stripe_price_id]
    update_plan(plan("pro"), {"price_cents": 12900}, actor="cli")
    sync()
    sub = stripe.subscription(customer["id"], [stripe.objects[old_price["id"]]], metadata={"tenant_id": str(tenant.id)})
    assert sub["items"]["data"][0]["price"]["lookup_key"] is None
    apply_stripe_subscription(sub, as_of=from_timestamp(sub["created"]))
    subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
    assert subscription.plan.code == "pro"


def test_editing_what_stripe_holds_marks_the_plan_not_synced_until_the_next_sync(ctx, stripe):
    sync()
    update_plan(plan("pro"), {"rate_limit_per_minute": 5000}, actor="cli")  # not on Stripe
    assert plan("pro").stripe_synced_at is not None
    update_plan(plan("pro"), {"name": "Pro 2"}, actor="cli")
    assert plan("pro").stripe_synced_at is None
    sync(plans=[plan("pro")])
    assert plan("pro").stripe_synced_at is not None
