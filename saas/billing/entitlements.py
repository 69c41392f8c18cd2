"""The one place that answers "may this tenant do X now?".

Plans and subscriptions are read through a per-process cache of immutable
snapshots (see saas.cache): a change committed in this process is seen at
once, elsewhere within ACCESS_CACHE_SECONDS. The rule is ``Rights``, given
its session, caches and settings (so it runs with no app context: the send
service's); the module's functions ask it with the current app's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from saas import cache
from saas.billing.models import Plan, PlanRules, Subscription
from saas.billing.standing import FREE_RIGHTS, PastDueGrace, subscribed_rights_apply
from saas.errors import FeatureNotInPlan, PaymentRequired
from saas.extensions import db
from saas.timeutil import utcnow

# The feature that lets a tenant have more than one live number connected (the sandbox number never counts).
MULTI_NUMBER = "multi_number"

cache.watch(Plan, Subscription)


@dataclass(frozen=True)
class PlanTerms(PlanRules):
    """What a plan sells, as a snapshot safe to share between requests."""

    id: int
    code: str
    name: str
    price_cents: int
    currency: str
    interval: str
    included_conversations: int
    overage_cents: Decimal | None  # cents, fractions allowed; None: a hard cap
    rate_limit_per_minute: int
    phone_numbers_allowed: int
    features: frozenset
    active: bool
    billing_unit: str = "conversations"
    included_messages: int = 0
    message_categories: frozenset = frozenset()
    max_contacts: int | None = None  # None: no limit
    max_broadcast_recipients: int | None = None
    # The tenant records consent itself: a marketing send is refused only after an opt-out, not for want of an opt-in.
    consent_managed_by_tenant: bool = False
    inbox_seats: int | None = None  # agents the inbox allows; None: no limit

    @classmethod
    def of(cls, plan: Plan) -> "PlanTerms":
        return cls(id=plan.id, code=plan.code, name=plan.name, price_cents=plan.price_cents,
                   currency=plan.currency, interval=plan.interval,
                   included_conversations=plan.included_conversations, overage_cents=plan.overage_cents,
                   rate_limit_per_minute=plan.rate_limit_per_minute,
                   phone_numbers_allowed=plan.phone_numbers_allowed,
                   features=frozenset(plan.features or ()), active=plan.active,
                   billing_unit=plan.billing_unit or "conversations", included_messages=plan.included_messages or 0,
                   message_categories=frozenset(plan.message_categories or ()),
                   max_contacts=plan.max_contacts, max_broadcast_recipients=plan.max_broadcast_recipients,
                   consent_managed_by_tenant=bool(plan.consent_managed_by_tenant), inbox_seats=plan.inbox_seats)


@dataclass(frozen=True)
class SubscriptionState:
    plan_id: int
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    past_due_since: datetime | None

    @classmethod
    def of(cls, subscription: Subscription) -> "SubscriptionState":
        return cls(plan_id=subscription.plan_id, status=subscription.status,
                   current_period_start=subscription.current_period_start,
                   current_period_end=subscription.current_period_end,
                   past_due_since=subscription.past_due_since)


@dataclass(frozen=True)
class Entitlements:
    plan: PlanTerms            # the plan subscribed to
    effective: PlanTerms       # the plan whose rights apply now
    status: str
    notice: str | None         # a sentence for the tenant when rights are reduced or at risk
    suspended: bool
    subscription: SubscriptionState | None = None
    # The past-due grace these rights were read under: what the subscription's period is judged by too.
    grace: PastDueGrace | None = field(default=None, compare=False)

    @property
    def features(self) -> frozenset[str]:
        return self.effective.features

    def may(self, feature: str) -> bool:
        return not self.suspended and feature in self.features

    @property
    def withheld(self) -> bool:
        """Paid rights withdrawn for non-payment: a paid plan is subscribed, the free plan's rights apply."""
        return not self.suspended and not self.plan.is_free and self.effective.code != self.plan.code

    def paid_plan_allows(self, feature: str) -> bool:
        """Rights withheld, and the plan paid for includes ``feature``: a payment would allow it."""
        return self.withheld and feature in self.plan.features

    def require(self, feature: str, what: str, **details) -> None:
        """The gate of every plan feature: returns when the rights in force include ``feature``.

        Raises PaymentRequired (402) when rights are withheld for non-payment and
        the plan paid for includes ``feature``, FeatureNotInPlan (403) otherwise.
        ``what`` names the refused thing in the message ("media uploads"),
        ``details`` go into the error's details.
        """
        if self.may(feature):
            return
        if self.paid_plan_allows(feature):
            raise self.payment_required(what, feature=feature, **details)
        raise FeatureNotInPlan(f"Your {self.effective.name} plan does not include {what}.",
                               details={"feature": feature, **details, "plan": self.effective.code}, upgrade=True)

    def payment_required(self, what: str, **details) -> PaymentRequired:
        """The refusal when the plan paid for would allow ``what`` but its rights are withheld for non-payment."""
        plan = self.plan
        return PaymentRequired(
            f"Your {plan.name} subscription is {self.status.replace('_', ' ')}, so free plan limits apply: "
            f"{what} needs the {plan.name} plan. Update your payment method or resubscribe to restore it.",
            details={"status": self.status, "plan": plan.code, "effective_plan": self.effective.code, **details},
            upgrade=True)

    @property
    def rate_limit_per_minute(self) -> int:
        return self.effective.rate_limit_per_minute

    @property
    def phone_numbers_allowed(self) -> int:
        return self.effective.phone_numbers_allowed

    @property
    def live_numbers_allowed(self) -> int:
        """How many live numbers may be connected now (see ``live_numbers_allowed``); none while suspended."""
        return 0 if self.suspended else live_numbers_allowed(self.effective)


def live_numbers_allowed(plan) -> int:
    """The live numbers ``plan`` (a Plan or PlanTerms) lets a tenant connect: its ``phone_numbers_allowed``, but
    one at most without the ``multi_number`` feature."""
    allowed = plan.phone_numbers_allowed
    return allowed if MULTI_NUMBER in (plan.features or ()) else min(allowed, 1)


def plans_with(feature: str) -> list[Plan]:
    """The plans on sale that include ``feature``, in the catalogue's order: where to upgrade for it."""
    plans = db.session.scalars(select(Plan).where(Plan.active.is_(True)).order_by(Plan.sort_order, Plan.id))
    return [plan for plan in plans if feature in (plan.features or ())]


class Rights:
    """What tenants may do now, read with what it is given: ``session`` (a SQLAlchemy session, or a
    scoped one), ``caches(name)`` (the snapshot caches: saas.cache.Caches, or ``cache.cache_for``) and
    ``config`` (the settings, read per call: PAST_DUE_GRACE_DAYS). Reaches nothing else, so it answers
    with or without an app context; the factory builds the app's once."""

    def __init__(self, session, caches, config):
        self.session = session
        self.caches = caches
        self.config = config

    @property
    def grace(self) -> PastDueGrace:
        return PastDueGrace.configured(self.config)

    def plan_terms(self, plan_id: int) -> PlanTerms | None:
        def load():
            plan = self.session.get(Plan, plan_id)
            return PlanTerms.of(plan) if plan is not None else None

        return self.caches("plans").get(plan_id, load)

    def plan_terms_by_code(self, code: str) -> PlanTerms | None:
        def load():
            plan = self.session.scalar(select(Plan).where(Plan.code == code))
            return PlanTerms.of(plan) if plan is not None else None

        return self.caches("plans").get(("code", code), load)

    def subscription_state(self, tenant_id: int) -> SubscriptionState | None:
        def load():
            subscription = self.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
            return SubscriptionState.of(subscription) if subscription is not None else None

        return self.caches("subscriptions").get(tenant_id, load)

    def for_tenant_id(self, tenant_id: int) -> Entitlements:
        """``for_tenant`` of the tenant ``tenant_id`` (its snapshot read in the same session and caches)."""
        from saas.tenants.services import tenant_snapshot

        return self.for_tenant(tenant_snapshot(tenant_id, session=self.session, caches=self.caches))

    def for_tenant(self, tenant, subscription: Subscription | SubscriptionState | None = None,
                   *, now: datetime | None = None) -> Entitlements:
        """What ``tenant`` may do now, from its subscription's plan and status.

        ``past_due`` keeps the plan for PAST_DUE_GRACE_DAYS; unpaid, canceled,
        incomplete, incomplete_expired and paused fall back to the free plan.
        ``tenant`` is a Tenant or any snapshot with ``id`` and ``is_active``.
        """
        now = now or utcnow()
        grace = self.grace
        if isinstance(subscription, Subscription):
            state = SubscriptionState.of(subscription)
        else:
            state = subscription or self.subscription_state(tenant.id)
        suspended = not tenant.is_active
        if state is None:
            free = self.plan_terms_by_code("free")
            return Entitlements(plan=free, effective=free, status="none",
                                notice="No subscription.", suspended=suspended, grace=grace)
        plan = self.plan_terms(state.plan_id)
        status = state.status
        effective, notice = plan, None
        if status == "past_due":
            if not subscribed_rights_apply(state, now, grace):
                effective = self.plan_terms_by_code("free")
                notice = "Your payment is overdue and the grace period has ended: free plan limits apply."
            else:
                notice = "Your last payment failed. Update your card to keep your plan."
        elif status in FREE_RIGHTS and not plan.is_free:
            effective = self.plan_terms_by_code("free")
            notice = f"Your subscription is {status.replace('_', ' ')}: free plan limits apply."
        if suspended:
            notice = "This account is suspended. Contact support."
        return Entitlements(plan=plan, effective=effective, status=status, notice=notice, suspended=suspended,
                            subscription=state, grace=grace)


def in_app() -> Rights:
    """The rights of the current app context: its session, its caches, its settings."""
    return Rights(db.session, cache.cache_for, current_app.config)


def plan_terms(plan_id: int) -> PlanTerms | None:
    return in_app().plan_terms(plan_id)


def plan_terms_by_code(code: str) -> PlanTerms | None:
    return in_app().plan_terms_by_code(code)


def subscription_state(tenant_id: int) -> SubscriptionState | None:
    return in_app().subscription_state(tenant_id)


def for_tenant(tenant, subscription: Subscription | SubscriptionState | None = None,
               *, now: datetime | None = None) -> Entitlements:
    """``Rights.for_tenant`` in the current app context (a request, a command, a job)."""
    return in_app().for_tenant(tenant, subscription, now=now)
