"""The pricing policy on its own: what a send costs under a plan, the quota decision, included or overage."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from saas.billing.entitlements import Entitlements

from saas.billing.entitlements import PlanTerms
from saas.billing.pricing import PricingPolicy, Send, charge, quota, split_overage
from saas.errors import PaymentRequired, QuotaExceeded


def plan(code: str, **terms) -> PlanTerms:
    return PlanTerms(id=1, code=code, name=code.title(), price_cents=900, currency="usd", interval="month",
                     rate_limit_per_minute=60, phone_numbers_allowed=1, features=frozenset(), active=True, **terms)


def conversations(included=10, overage=None, code="convo") -> PlanTerms:
    return plan(code, included_conversations=included, overage_cents=overage)


def messages(included=10, categories=("marketing", "utility"), overage=None, code="bulk") -> PlanTerms:
    return plan(code, billing_unit="messages", included_conversations=0, included_messages=included,
                message_categories=frozenset(categories), overage_cents=overage)


def rights(plan, paid=None, status="active"):
    """The rights in force under ``plan``; with ``paid``, that plan's rights withheld for non-payment."""
    return Entitlements(plan=paid or plan, effective=plan, status=status, notice=None, suspended=False)


def test_a_conversation_plan_bills_the_window_a_send_opens_and_nothing_for_joining_one():
    opened = charge(conversations(), Send("marketing", conversation_id=7, opened=True, message_id=3))
    joined = charge(conversations(), Send("marketing", conversation_id=7, opened=False, message_id=4))
    assert (opened.units, opened.billed, opened.subject) == (
        {"messages": 1, "conversations": 1, "conversations.marketing": 1}, "conversations", "conversation:7")
    assert (joined.units, joined.billed, joined.subject) == ({"messages": 1}, None, None)


def test_a_message_plan_bills_each_message_of_its_categories_and_nothing_else():
    priced = charge(messages(), Send("utility", conversation_id=7, opened=False, message_id=9))
    free = charge(messages(), Send("service", conversation_id=8, opened=True, message_id=10))
    assert (priced.units, priced.billed, priced.subject) == (
        {"messages": 1, "messages.utility": 1}, "messages.utility", "message:9")
    assert (free.units, free.billed) == ({"messages": 1}, None)
    assert quota(messages(5)).metrics == ("messages.marketing", "messages.utility")


def test_the_hard_cap_refuses_the_unit_past_the_included_ones_and_counts_only_then():
    policy = PricingPolicy()
    counted = []

    def used(metrics):
        counted.append(metrics)
        return 2

    policy.admit(rights(messages(3)), Send("marketing", message_id=1), used)
    with pytest.raises(QuotaExceeded) as refused:
        policy.admit(rights(messages(2)), Send("marketing", message_id=1), used)
    assert refused.value.details == {"quota": 2, "used": 2, "metric": "messages"}
    assert "2 marketing/utility messages" in refused.value.message
    # Nothing to decide: a free category, a joined window, an overage plan.
    policy.admit(rights(messages(0)), Send("service", message_id=1), used)
    policy.admit(rights(conversations(0)), Send("service", conversation_id=1, opened=False), used)
    policy.admit(rights(messages(0, overage=Decimal("0.5"))), Send("marketing", message_id=1), used)
    assert counted == [("messages.marketing", "messages.utility")] * 2


def test_withheld_rights_say_payment_required_only_where_the_paid_plan_would_allow_the_send():
    policy = PricingPolicy()
    free = conversations(1, code="free")
    used = lambda metrics: 1  # noqa: E731
    with pytest.raises(PaymentRequired) as lapsed:
        policy.admit(rights(free, paid=messages(5, categories=("marketing",))), Send("service", 1, True, 1), used)
    assert lapsed.value.details == {"status": "active", "plan": "bulk", "effective_plan": "free", "quota": 1,
                                    "used": 1}
    with pytest.raises(QuotaExceeded):
        policy.admit(rights(free, paid=messages(1, categories=("service",))), Send("service", 1, True, 1), used)


def test_records_fill_the_included_amount_in_order_and_the_rest_is_overage():
    terms = quota(messages(2, overage=Decimal("1")))
    unit = lambda metric: SimpleNamespace(metric=metric, quantity=1)  # noqa: E731
    records = [unit("messages.marketing"), unit("conversations"), unit("messages.utility"),
               unit("messages.marketing")]
    included, overage = split_overage(terms, 0, records)
    # A unit the plan does not price (left by the plan before it) is overage, and takes no room.
    assert (included, overage) == ([records[0], records[2]], [records[1], records[3]])
    assert split_overage(terms, 2, records) == ([], records)
    assert split_overage(quota(messages(0)), 5, records) == (records, [])  # a hard cap reports nothing
