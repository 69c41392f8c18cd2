"""The pricing policy: what a send costs the tenant, in the unit its plan prices, and the quota decision.

A plan prices one unit. Conversations (the default): the 24-hour window a send
opens per contact and category; a send inside an open window costs nothing
more. Or messages of the categories the plan names, as Meta bills since
2025-07-01: each message of those categories is one unit, and a message of
another category is free and counts against nothing.

Whatever a plan prices, every send counts in ``messages``. Each billable unit
counts in its metric (``conversations`` with ``conversations.<category>``,
or ``messages.<category>``) and gets one usage record, which Stripe is told
about once the reporter has decided it overage (saas.metering.reporting).

The quota decision is made here and nowhere else: the included amount, a
hard cap or overage, and the refusal that says a payment would allow the send
when a paid plan's rights are withheld. Metering asks it (``admit``) under the
tenant's quota lock, with a way to count the period's usage so far.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from saas.billing.models import CATEGORIES, UNIT_CONVERSATIONS, UNIT_MESSAGES
from saas.errors import QuotaExceeded

METRIC_CONVERSATIONS = UNIT_CONVERSATIONS
METRIC_MESSAGES = UNIT_MESSAGES
# What one billable unit is; its usage record's subject is "<kind>:<id>".
CONVERSATION = "conversation"
MESSAGE = "message"


def conversation_metric(category: str) -> str:
    return f"{METRIC_CONVERSATIONS}.{category}"


def message_metric(category: str) -> str:
    return f"{METRIC_MESSAGES}.{category}"


def metric_unit(metric: str) -> str | None:
    """The priced unit a billable unit's metric counts (``conversations``, ``messages.marketing``), whose
    Billing Meter its overage goes to; None for a metric that is no billable unit."""
    if metric == METRIC_CONVERSATIONS:
        return UNIT_CONVERSATIONS
    if metric.startswith(f"{METRIC_MESSAGES}.") and metric.split(".", 1)[1] in CATEGORIES:
        return UNIT_MESSAGES
    return None


def conversation_subject(conversation_id) -> str:
    return f"{CONVERSATION}:{conversation_id}"


def message_subject(message_id) -> str:
    return f"{MESSAGE}:{message_id}"


@dataclass(frozen=True)
class Send:
    """A send as pricing sees it: its category, the window it went in (opened by it or not), its message."""

    category: str
    conversation_id: int | None = None
    opened: bool = False
    message_id: int | None = None


@dataclass(frozen=True)
class Charge:
    """What one send counts (metric -> quantity), and the billable unit among it, if any."""

    units: dict = field(default_factory=dict)
    billed: str | None = None   # the metric of the billable unit the send adds
    kind: str | None = None     # CONVERSATION or MESSAGE: what that unit is
    subject: str | None = None  # the unit's name, given the send's ids ("conversation:42")


@dataclass(frozen=True)
class Quota:
    """What a plan includes of its priced unit per period."""

    unit: str                 # "conversations" or "messages"
    metrics: tuple            # the metrics counted against the included amount
    included: int
    hard_cap: bool
    categories: tuple = ()    # per-message plans: the categories priced


def quota(plan) -> Quota:
    """The quota of ``plan`` (a Plan or a PlanTerms)."""
    if plan.per_message:
        categories = tuple(c for c in CATEGORIES if c in (plan.message_categories or ()))
        return Quota(UNIT_MESSAGES, tuple(message_metric(c) for c in categories), plan.included_units,
                     plan.hard_cap, categories)
    return Quota(UNIT_CONVERSATIONS, (METRIC_CONVERSATIONS,), plan.included_units, plan.hard_cap)


def charge(plan, send: Send) -> Charge:
    """What ``send`` costs under ``plan``: every send is a message; a billable unit when the plan prices one."""
    units = {METRIC_MESSAGES: 1}
    if plan.per_message:
        if send.category not in (plan.message_categories or ()):
            return Charge(units)
        metric = message_metric(send.category)
        return Charge({**units, metric: 1}, metric, MESSAGE,
                      message_subject(send.message_id) if send.message_id is not None else None)
    if not send.opened:
        return Charge(units)
    units.update({METRIC_CONVERSATIONS: 1, conversation_metric(send.category): 1})
    return Charge(units, METRIC_CONVERSATIONS, CONVERSATION,
                  conversation_subject(send.conversation_id) if send.conversation_id is not None else None)


def unit_counts(metric: str, category: str, quantity: int = 1) -> dict:
    """Every metric one billable unit of ``metric`` (in ``category``) was counted in: what taking it back undoes."""
    if metric == METRIC_CONVERSATIONS:
        return {METRIC_CONVERSATIONS: quantity, conversation_metric(category): quantity}
    return {metric: quantity}


def split_overage(terms: Quota, included_so_far: int, records: list) -> tuple[list, list]:
    """Which billable units (``records`` in order, each with ``metric`` and ``quantity``) are inside what the
    plan includes and which are overage, ``included_so_far`` of it taken already.

    The first records fill the included amount; every one after them is
    overage. A record of a unit the plan does not price (left by the plan
    before it in the same period) is overage. A hard cap never bills overage:
    everything it let through is included.
    """
    if terms.hard_cap:
        return list(records), []
    room = terms.included - included_so_far
    included, overage, spilled = [], [], False
    for record in records:
        priced = record.metric in terms.metrics
        if priced and not spilled and record.quantity <= room:
            included.append(record)
            room -= record.quantity
        else:
            overage.append(record)
            spilled = spilled or priced
    return included, overage


class PricingPolicy:
    """The policy metering asks: what a send costs under the tenant's rights, and whether it may be sent."""

    def charge(self, rights, send: Send) -> Charge:
        """``send``'s units under the rights in force (the effective plan's)."""
        return charge(rights.effective, send)

    def may_refuse(self, rights) -> bool:
        """Whether a send can be refused for its quota: only a hard cap refuses, overage is billed."""
        return rights.effective.hard_cap

    def quota(self, rights) -> Quota:
        return quota(rights.effective)

    def admit(self, rights, send: Send, used: Callable[[tuple], int]) -> None:
        """The quota decision for ``send``, about to be metered. ``used(metrics)`` counts the period's usage
        of those metrics so far (under the tenant's quota lock; called only when a hard cap needs it).

        Raises QuotaExceeded when the billable unit would pass the hard cap, or PaymentRequired when
        the plan paid for would allow it but its rights are withheld for non-payment.
        """
        plan = rights.effective
        billed = charge(plan, send)
        if billed.billed is None or not plan.hard_cap:
            return
        terms = quota(plan)
        counted = used(terms.metrics)
        if counted + billed.units[billed.billed] <= terms.included:
            return
        what = _what(terms, send.category)
        if _paid_plan_allows(rights, send, used):
            raise rights.payment_required(f"{what} past the free plan's quota", quota=terms.included, used=counted)
        raise QuotaExceeded(
            f"Your plan includes {terms.included} {_noun(terms)} this period and all of them are used. "
            "Upgrade your plan to send more.",
            details={"quota": terms.included, "used": counted, "metric": terms.unit}, upgrade=True)


def _noun(terms: Quota) -> str:
    if terms.unit == UNIT_MESSAGES:
        return f"{'/'.join(terms.categories)} messages"
    return "conversations"


def _what(terms: Quota, category: str) -> str:
    return f"a {category} message" if terms.unit == UNIT_MESSAGES else "a new conversation"


def _paid_plan_allows(rights, send: Send, used) -> bool:
    """Rights withheld, and the plan paid for would take ``send`` now: free, overage, or within its quota."""
    if not rights.withheld:
        return False
    paid = rights.plan
    billed = charge(paid, send)
    if billed.billed is None or not paid.hard_cap:
        return True
    terms = quota(paid)
    return used(terms.metrics) + billed.units[billed.billed] <= terms.included
