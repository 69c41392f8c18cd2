"""The admin's plan form edits a plan's inbox seats (empty: no limit), and the default plans sell the inbox."""
from __future__ import annotations

from saas.billing.catalog import DEFAULT_PLANS, plan_by_code
from saas.extensions import db


def test_the_default_plans_sell_the_inbox_with_their_seats():
    seats = {plan["code"]: ("inbox" in plan["features"], plan.get("inbox_seats")) for plan in DEFAULT_PLANS}
    assert seats == {"free": (False, None), "starter": (True, 2), "pro": (True, 10), "enterprise": (True, None)}


def test_the_plan_form_sets_and_clears_inbox_seats(app):
    from saas.admin.plan_forms import EditPlanForm

    with app.test_request_context(method="POST", data={
            "name": "Starter", "price_cents": "2900", "currency": "usd", "interval": "month",
            "billing_unit": "conversations", "included_conversations": "1000", "included_messages": "0",
            "rate_limit_per_minute": "300", "phone_numbers_allowed": "1", "features": ["text", "inbox"],
            "inbox_seats": "5", "trial_days": "0", "sort_order": "10"}):
        form = EditPlanForm(meta={"csrf": False})
        assert form.validate(), form.errors
        assert form.terms()["inbox_seats"] == 5 and "inbox" in form.terms()["features"]
    with app.test_request_context(method="POST", data={"inbox_seats": ""}):
        assert EditPlanForm(meta={"csrf": False}).inbox_seats.data is None
    with app.app_context():
        assert plan_by_code("starter").inbox_seats == 2
        db.session.remove()
