"""The one place that answers "may this tenant do X now?"."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from saas.billing.catalog import plan_by_code
from saas.billing.models import Plan, Subscription
from saas.timeutil import utcnow

FULL_ACCESS = ("active", "trialing")
FREE_RIGHTS = ("unpaid", "canceled", "incomplete", "incomplete_expired", "paused")


@dataclass(frozen=True)
class Entitlements:
    plan: Plan            # the plan subscribed to
    effective: Plan       # the plan whose rights apply now
    status: str
    notice: str | None    # a sentence for the tenant when rights are reduced or at risk
    suspended: bool

    @property
    def features(self) -> frozenset[str]:
        return frozenset(self.effective.features or [])

    def may(self, feature: str) -> bool:
        return not self.suspended and feature in self.features

    @property
    def included_conversations(self) -> int:
        return self.effective.included_conversations

    @property
    def hard_cap(self) -> bool:
        return self.effective.overage_cents is None

    @property
    def rate_limit_per_minute(self) -> int:
        return self.effective.rate_limit_per_minute

    @property
    def phone_numbers_allowed(self) -> int:
        return self.effective.phone_numbers_allowed


def _grace_ends(subscription: Subscription) -> datetime | None:
    if subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=current_app.config["PAST_DUE_GRACE_DAYS"])


def for_tenant(tenant, subscription: Subscription | None = None, *, now: datetime | None = None) -> Entitlements:
    """What ``tenant`` may do now, from its subscription's plan and status.

    ``past_due`` keeps the plan for PAST_DUE_GRACE_DAYS; unpaid, canceled,
    incomplete, incomplete_expired and paused fall back to the free plan.
    """
    from saas.billing.services import subscription_for

    now = now or utcnow()
    subscription = subscription or subscription_for(tenant)
    suspended = not tenant.is_active
    if subscription is None:
        free = plan_by_code("free")
        return Entitlements(plan=free, effective=free, status="none",
                            notice="No subscription.", suspended=suspended)
    plan = subscription.plan
    status = subscription.status
    effective, notice = plan, None
    if status == "past_due":
        ends = _grace_ends(subscription)
        if ends is not None and now > ends:
            effective = plan_by_code("free")
            notice = "Your payment is overdue and the grace period has ended: free plan limits apply."
        else:
            notice = "Your last payment failed. Update your card to keep your plan."
    elif status in FREE_RIGHTS and not plan.is_free:
        effective = plan_by_code("free")
        notice = f"Your subscription is {status.replace('_', ' ')}: free plan limits apply."
    if suspended:
        notice = "This account is suspended. Contact support."
    return Entitlements(plan=plan, effective=effective, status=status, notice=notice, suspended=suspended)
