"""The ``order_notifications`` plan feature: sold with Pro and Enterprise, offered on the admin's plan form."""
from __future__ import annotations

from saas.billing.catalog import DEFAULT_PLANS
from saas.billing.models import FEATURE_NAMES


def test_pro_and_enterprise_include_order_notifications():
    with_it = {plan["code"] for plan in DEFAULT_PLANS if "order_notifications" in plan["features"]}
    assert with_it == {"pro", "enterprise"}


def test_the_admin_plan_form_offers_it(app):
    from saas.admin.plan_forms import PlanForm

    with app.test_request_context():
        choices = [choice[0] if isinstance(choice, tuple) else choice.value for choice in PlanForm().features.choices]
    assert "order_notifications" in choices and "order_notifications" in FEATURE_NAMES
