"""What the billing page and the header say in each state of a subscription: one true thing, once.

A subscription canceled at period end keeps its plan until then (and says so, not "canceled"); a lapsed one
has the free plan's rights (and the header does not say the tenant is paying); the billing notice appears once.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from saas import cache
from saas.billing.models import Subscription
from saas.extensions import db
from saas.timeutil import utcnow
from tests.factories import make_tenant
from tests.portal.team_helpers import login

EMAIL = "owner@states.example.com"
PERIOD_END = datetime(2031, 3, 31, 12, 0)
TRIAL_END = datetime(2031, 3, 14, 12, 0)


def words(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def part(page: str, element_id: str) -> str | None:
    match = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    return words(match.group(2)) if match else None


def header_plan(page: str) -> str:
    return words(re.search(r"<span>Plan: (.*?)</span>\s*<span>Conversations", page, re.S).group(1))


# (plan, subscription fields) -> (billing summary, header plan, billing notice or None)
STATES = {
    "free": ("free", {}, "You are on the Free plan.", "Free", None),
    "active": ("starter", {"current_period_end": PERIOD_END},
               "You are on the Starter plan; it renews on 31 Mar 2031.", "Starter", None),
    "assigned by hand": ("starter", {"stripe_subscription_id": None},
                         "You are on the Starter plan.", "Starter", None),
    "trialing": ("starter", {"status": "trialing", "trial_end": TRIAL_END, "current_period_end": TRIAL_END},
                 "You are on the Starter plan, on a free trial until 14 Mar 2031.", "Starter", None),
    "canceled at period end": ("starter", {"cancel_at_period_end": True, "current_period_end": PERIOD_END},
                               "Your Starter plan ends on 31 Mar 2031; until then you keep its rights, then the "
                               "free plan applies.", "Starter (ends 31 Mar 2031)", None),
    "past due, in the grace period": ("starter", {"status": "past_due", "past_due_since": "now"},
                                      "You are on the Starter plan.", "Starter",
                                      "Your last payment failed. Update your card to keep your plan."),
    "past due, grace over": ("starter", {"status": "past_due", "past_due_since": "long ago"},
                             "The Free plan's limits apply while your Starter subscription is overdue.",
                             "Free (Starter overdue)",
                             "Your payment is overdue and the grace period has ended: free plan limits apply."),
    "unpaid": ("starter", {"status": "unpaid"},
               "The Free plan's limits apply while your Starter subscription is unpaid.", "Free (Starter unpaid)",
               "Your subscription is unpaid: free plan limits apply."),
    # Stripe keeps cancel_at_period_end on a subscription that has ended: the page says it ended, once.
    "canceled": ("starter", {"status": "canceled", "cancel_at_period_end": True, "current_period_end": PERIOD_END},
                 "You are on the Free plan: your Starter subscription has ended.", "Free",
                 "Your subscription is canceled: free plan limits apply."),
    "incomplete_expired": ("starter", {"status": "incomplete_expired"},
                           "You are on the Free plan: your Starter subscription has ended.", "Free",
                           "Your subscription is incomplete expired: free plan limits apply."),
}


def put_in_state(app, plan, fields):
    with app.app_context():
        tenant = make_tenant(plan, email=EMAIL)
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
        subscription.stripe_subscription_id = "sub_states_1"
        for name, value in fields.items():
            if name == "past_due_since":
                days = app.config["PAST_DUE_GRACE_DAYS"] + 1 if value == "long ago" else 0
                value = utcnow() - timedelta(days=days)
            setattr(subscription, name, value)
        db.session.commit()
        cache.clear_all()
        db.session.remove()


@pytest.mark.parametrize("state", STATES)
def test_each_state_says_one_true_thing_once(app, state):
    plan, fields, summary, header, notice = STATES[state]
    put_in_state(app, plan, fields)
    client = login(app, EMAIL)

    page = client.get("/billing").get_data(as_text=True)

    assert part(page, "billing-summary") == summary
    assert header_plan(page) == header
    notices = re.findall(r'<div class="notice" role="alert" id="[^"]*">', page)
    if notice is None:
        assert notices == []
    else:
        assert len(notices) == 1 and part(page, "billing-notice").startswith(notice)
    text = words(page)
    assert "paying for" not in text and "canceled and ends" not in text
    # The dashboard's header says the same.
    assert header_plan(client.get("/dashboard").get_data(as_text=True)) == header
