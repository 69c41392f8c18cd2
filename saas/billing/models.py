from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.billing.money import ExactDecimal, unit_amount
from saas.extensions import db
from saas.timeutil import utcnow

FEATURE_NAMES = {
    "text": "Text, reactions, locations and contacts",
    "template": "Message templates",
    "media": "Images, audio, video, documents and stickers",
    "interactive": "Interactive buttons and lists",
    "broadcast": "Broadcasts",
    "webhooks": "Webhooks to your own endpoint",
    "multi_number": "Several phone numbers",
    "analytics_export": "Analytics export",
    "inbox": "Support inbox (seats per plan)",
    "automation": "Automation rules, business hours and away messages",
    "order_notifications": "Order tracking: shop webhooks and order notifications",
}

FEATURES = tuple(FEATURE_NAMES)

# Meta's message categories: each conversation window, and each message, has one.
CATEGORIES = ("marketing", "utility", "authentication", "service")
# The unit a plan prices (saas.billing.pricing): a conversation window per contact and category, or a message.
UNIT_CONVERSATIONS = "conversations"
UNIT_MESSAGES = "messages"
BILLING_UNITS = (UNIT_CONVERSATIONS, UNIT_MESSAGES)

# Stripe's subscription statuses, as Stripe spells them.
SUBSCRIPTION_STATUSES = (
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "paused",
)


class PlanRules:
    """What follows from a plan's terms; shared by the model and its cached snapshot
    (both have overage_cents, price_cents, features and the priced unit's terms)."""

    @property
    def hard_cap(self) -> bool:
        return self.overage_cents is None

    @property
    def is_free(self) -> bool:
        return self.price_cents == 0

    @property
    def overage_amount(self) -> str | None:
        """The overage price in the currency's units, exactly, for pages: "0.05", "0.005"; None: a hard cap."""
        return None if self.overage_cents is None else unit_amount(self.overage_cents)

    def has(self, feature: str) -> bool:
        return feature in (self.features or ())

    @property
    def per_message(self) -> bool:
        """Whether the plan prices messages (of its ``message_categories``) rather than conversations."""
        return self.billing_unit == UNIT_MESSAGES

    @property
    def included_units(self) -> int:
        """How many of its priced unit the plan includes per period."""
        return self.included_messages if self.per_message else self.included_conversations


class Plan(PlanRules, db.Model):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    interval: Mapped[str] = mapped_column(String(10), default="month")
    included_conversations: Mapped[int] = mapped_column(Integer, default=0)
    # What the plan prices: conversations (the default), or messages of ``message_categories``
    # (messages of other categories are free), of which it includes ``included_messages``.
    billing_unit: Mapped[str] = mapped_column(String(20), default=UNIT_CONVERSATIONS)
    included_messages: Mapped[int] = mapped_column(Integer, default=0)
    message_categories: Mapped[list] = mapped_column(JSON, default=list)
    # Price of each unit past the included ones, in cents, fractions allowed (Stripe's
    # unit_amount_decimal: up to 12 decimal places); None means a hard cap.
    overage_cents: Mapped[Decimal | None] = mapped_column(ExactDecimal(20, 12))
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    phone_numbers_allowed: Mapped[int] = mapped_column(Integer, default=1)
    features: Mapped[list] = mapped_column(JSON, default=list)
    # How many contacts a tenant may store, and recipients a broadcast may have; None: no limit.
    max_contacts: Mapped[int | None] = mapped_column(Integer)
    max_broadcast_recipients: Mapped[int | None] = mapped_column(Integer)
    # Members with the agent role (and invitations to it) the inbox allows; None: no limit.
    inbox_seats: Mapped[int | None] = mapped_column(Integer)
    # True: the tenant records consent in its own systems, and marketing sends are not checked
    # against our opt-ins (opt-outs still are).
    consent_managed_by_tenant: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_product_id: Mapped[str | None] = mapped_column(String(255))
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    stripe_metered_price_id: Mapped[str | None] = mapped_column(String(255))
    # The Billing Meter the metered price counts (one meter per unit, shared by plans).
    stripe_meter_id: Mapped[str | None] = mapped_column(String(255))
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    # When Stripe last held exactly these terms; None: never synced, or edited since.
    stripe_synced_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Why the last sync to Stripe failed; None after a sync that succeeded.
    stripe_sync_error: Mapped[str | None] = mapped_column(String(500))
    # False: archived. Subscribers keep it; nobody new may choose it.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Subscription(db.Model):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), unique=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(30), default="active")
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    trial_end: Mapped[datetime | None] = mapped_column(DateTime)
    # `created` of the newest Stripe event applied; older events never win.
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime)
    past_due_since: Mapped[datetime | None] = mapped_column(DateTime)
    # The Stripe price of the flat item, and the metered item's id (for plan changes).
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    stripe_metered_item_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    plan = relationship("Plan", lazy="selectin")
    tenant = relationship("Tenant", backref=db.backref("subscription", uselist=False))


class StripeEvent(db.Model):
    """The ledger that makes webhook handling idempotent: one row per evt_ id."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(DateTime)
    # The tenant the event concerns, once known (shown on the admin's tenant page).
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"), index=True)
    # The Stripe object the event carried (its data.object), kept for the console and for retries.
    object_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict | None] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # What applying it did ("plan pro, active"), or why it changed nothing.
    outcome: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)
