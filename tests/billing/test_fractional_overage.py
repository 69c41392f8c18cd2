"""Overage prices in fractions of a cent (Stripe's unit_amount_decimal): entered, stored exactly, synced, shown."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from saas.billing import stripe_client
from saas.billing.catalog import plan_by_code, update_plan
from saas.billing.stripe_catalog import sync_plans
from saas.extensions import db
from tests.admin.test_plans import admin, audit_actions, cell, page_of, stored_plan  # noqa: F401
from tests.conftest import AuthActions
from tests.factories import sender


@pytest.mark.parametrize("entered, stored, shown", [
    ("0.5", Decimal("0.5"), "0.005 USD each"),
    ("1.25", Decimal("1.25"), "0.0125 USD each"),
    (" 2.50 ", Decimal("2.5"), "0.025 USD each"),
    ("0.000000000001", Decimal("0.000000000001"), "0.00000000000001 USD each"),
    ("99999999.999999999999", None, None),  # past the bound: a form error, not a 500
    ("99999999", Decimal("99999999"), "999,999.99 USD each"),
    ("7", Decimal("7"), "0.07 USD each"),
])
def test_an_admin_enters_an_overage_price_in_fractions_of_a_cent(app, admin, entered, stored, shown):
    response = admin.create(overage_cents=entered)
    if stored is None:
        assert response.status_code == 400
        assert stored_plan(app, "gold") is None
        return
    assert response.status_code == 302, page_of(response)
    plan = stored_plan(app, "gold")
    assert plan.overage_cents == stored and str(plan.overage_cents) == str(stored)  # exactly, no float
    assert cell(page_of(admin.client.get("/admin/plans")), "gold", "overage") == shown
    [entry] = audit_actions(app, "plan.created")
    assert entry.details["terms"]["overage_cents"] == format(stored, "f")


def test_the_database_holds_the_price_exactly(app, admin):
    assert admin.create(overage_cents="12345678.123456789012").status_code == 302
    with app.app_context():
        raw = db.session.execute(text("SELECT overage_cents FROM plans WHERE code = 'gold'")).scalar()
        db.session.remove()
    assert Decimal(str(raw)) == Decimal("12345678.123456789012")  # 20 digits: more than a float holds
    assert stored_plan(app, "gold").overage_cents == Decimal("12345678.123456789012")


def test_the_edit_form_shows_the_price_as_entered_and_saving_it_again_changes_nothing(app, admin):
    assert admin.edit("pro", overage_cents="0.75").status_code == 302
    page = page_of(admin.client.get("/admin/plans/pro/edit"))
    assert 'name="overage_cents" type="text" value="0.75"' in page
    assert admin.edit("pro").status_code == 302  # the same terms posted back
    changes = [e.details["changes"] for e in audit_actions(app, "plan.updated")]
    assert changes == [{"overage_cents": ["4", "0.75"]}]


def test_the_sync_sends_the_fraction_as_unit_amount_decimal_and_then_finds_it_unchanged(ctx, stripe):
    update_plan(plan_by_code("pro"), {"overage_cents": Decimal("0.5")}, actor="cli")
    sync_plans(stripe_client.client(), [plan_by_code("pro")])
    [created] = [c for c in stripe.requests("POST", "/v1/prices") if c.params.get("lookup_key") == "pro_overage"]
    assert created.params["unit_amount_decimal"] == "0.5" and "unit_amount" not in created.params
    price = stripe.objects[plan_by_code("pro").stripe_metered_price_id]
    assert (price["unit_amount_decimal"], price["unit_amount"]) == ("0.5", None)
    assert sync_plans(stripe_client.client(), [plan_by_code("pro")]) == ["pro: unchanged"]
    update_plan(plan_by_code("pro"), {"overage_cents": Decimal("1.25")}, actor="cli")
    [line] = sync_plans(stripe_client.client(), [plan_by_code("pro")])
    assert f"archived price {price['id']}" in line
    assert stripe.objects[plan_by_code("pro").stripe_metered_price_id]["unit_amount_decimal"] == "1.25"


def test_whole_cents_are_still_sent_as_whole_numbers(ctx, stripe):
    sync_plans(stripe_client.client(), [plan_by_code("starter")])
    [created] = [c for c in stripe.requests("POST", "/v1/prices") if c.params.get("lookup_key") == "starter_overage"]
    assert created.params["unit_amount_decimal"] == "5"


def test_the_portal_and_the_api_show_the_fraction(app, client):
    with app.app_context():
        update_plan(plan_by_code("starter"), {"overage_cents": Decimal("0.5")}, actor="cli")
        update_plan(plan_by_code("pro"), {"overage_cents": Decimal("1.25")}, actor="cli")
        db.session.remove()
    api = sender(client, "starter")
    usage = api.get("/api/v1/usage").get_json()
    assert (usage["overage_price_cents"], usage["overage_price_cents_decimal"]) == (0.5, "0.5")
    whole = sender(client, "enterprise").get("/api/v1/usage").get_json()
    assert (whole["overage_price_cents"], whole["overage_price_cents_decimal"]) == (3, "3")
    assert isinstance(whole["overage_price_cents"], int)
    free = sender(client, "free").get("/api/v1/usage").get_json()
    assert (free["overage_price_cents"], free["overage_price_cents_decimal"]) == (None, None)

    owner = AuthActions(app.test_client())
    owner.signup(email="owner@fraction.example.com")
    billing = page_of(owner.client.get("/billing"))
    assert "$0.005 per extra conversation" in billing and "$0.0125 per extra conversation" in billing
    with app.app_context():
        from saas.billing.services import assign_plan
        from saas.tenants.services import find_tenant

        assign_plan(find_tenant("owner@fraction.example.com"), "starter", actor="cli", stripe_configured=False)
        db.session.remove()
    assert "(then $0.005 each)" in page_of(owner.client.get("/dashboard"))
