"""Where the tenant stands with its plan, in words: the billing page's sentence and the note beside the plan
name in every page's header. One true sentence per state; the billing notice (entitlements' ``notice``, with
its way out) is shown once, in the header, and says what went wrong."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from saas.billing.entitlements import Entitlements

# The subscription is over: nothing is owed, nothing comes back without subscribing again.
ENDED = ("canceled", "incomplete_expired")
# Rights withheld while the subscription lasts: what it is waiting for.
WAITING = {"past_due": "overdue", "unpaid": "unpaid", "incomplete": "waiting for its first payment",
           "paused": "paused"}


@dataclass(frozen=True)
class Standing:
    summary: str             # the billing page's sentence
    header_note: str | None  # beside the plan in force in the header, or None


def day(when: datetime) -> str:
    return when.strftime("%d %b %Y")


def standing(rights: Entitlements, subscription) -> Standing:
    """What to say about ``rights`` (billing.entitlements) and the tenant's Subscription row (or None)."""
    plan, effective = rights.plan, rights.effective
    if plan.is_free:
        return Standing(f"You are on the {plan.name} plan.", None)
    if rights.withheld:
        if rights.status in ENDED:
            return Standing(f"You are on the {effective.name} plan: your {plan.name} subscription has ended.", None)
        waiting = WAITING.get(rights.status, rights.status.replace("_", " "))
        return Standing(f"The {effective.name} plan's limits apply while your {plan.name} subscription is "
                        f"{waiting}.", f"{plan.name} {waiting}")
    ends = subscription.current_period_end if subscription is not None else None
    if subscription is not None and subscription.cancel_at_period_end and ends is not None:
        return Standing(f"Your {plan.name} plan ends on {day(ends)}; until then you keep its rights, then the "
                        "free plan applies.", f"ends {day(ends)}")
    if rights.status == "trialing" and subscription is not None and subscription.trial_end is not None:
        return Standing(f"You are on the {plan.name} plan, on a free trial until {day(subscription.trial_end)}.",
                        None)
    if rights.status == "active" and ends is not None and subscription.stripe_subscription_id:
        return Standing(f"You are on the {plan.name} plan; it renews on {day(ends)}.", None)
    return Standing(f"You are on the {plan.name} plan.", None)
