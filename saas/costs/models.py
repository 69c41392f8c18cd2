"""Rate cards, charging rules, volume tiers and each message's cost.

Amounts are whole millionths of the card's currency (``*_micros``): Meta's rates have four decimals, and
sums of millions of them stay exact without a decimal type SQLite lacks.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

# Column bounds, shared with the CSV parser so a row too long for a column is refused as a row error.
MARKET_LENGTH = 60
CATEGORY_LENGTH = 40
TIER_LENGTH = 40
CONTEXT_LENGTH = 30
SOURCE_LENGTH = 300
# The list rate of a market and category (a tier row names its volume range instead).
LIST_TIER = ""


class RateCard(db.Model):
    """One of Meta's rate cards: in force from ``effective_from`` until the next card's date."""

    __tablename__ = "rate_cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH))
    filename: Mapped[str | None] = mapped_column(String(200))
    uploaded_by: Mapped[str | None] = mapped_column(String(255))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Rate(db.Model):
    """What one message of ``category`` to ``market`` costs under a card, at a volume tier (or the list rate)."""

    __tablename__ = "rates"

    card_id: Mapped[int] = mapped_column(ForeignKey("rate_cards.id", ondelete="CASCADE"), primary_key=True)
    market: Mapped[str] = mapped_column(String(MARKET_LENGTH), primary_key=True)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH), primary_key=True)
    tier: Mapped[str] = mapped_column(String(TIER_LENGTH), primary_key=True, default=LIST_TIER)
    rate_micros: Mapped[int] = mapped_column(BigInteger)


class ChargingRule(db.Model):
    """Whether a message of ``category`` sent in ``context`` is charged, from ``effective_from``.

    The rules with one date form a set that replaces the previous one; ``*`` matches any category or
    context, and the most specific rule of the set in force applies (saas.costs.rules).
    """

    __tablename__ = "charging_rules"
    __table_args__ = (UniqueConstraint("effective_from", "category", "context"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))
    context: Mapped[str] = mapped_column(String(CONTEXT_LENGTH))
    charged: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH))


class PricingTier(db.Model):
    """The volume tier Meta put a tenant's WhatsApp Business Account in, per market, category and month
    (the ``account_update`` webhook's ``VOLUME_BASED_PRICING_TIER_UPDATE``)."""

    __tablename__ = "pricing_tiers"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    waba_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Meta's region as the webhook names it, in the form saas.costs.markets.market_key gives.
    market_key: Mapped[str] = mapped_column(String(MARKET_LENGTH), primary_key=True)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH), primary_key=True)
    # From when in the month the tier holds (the webhook's tier_update_time): a month may move up more than once.
    since: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    effective_month: Mapped[str] = mapped_column(String(7))
    tier: Mapped[str] = mapped_column(String(TIER_LENGTH))
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MessageCost(db.Model):
    """What Meta charges for one outbound message: estimated when it settled, confirmed by a status's
    ``pricing`` object; both kept, with the difference (confirmed less estimated)."""

    __tablename__ = "message_costs"
    __table_args__ = (Index("ix_message_costs_tenant_sent", "tenant_id", "sent_at"),
                      Index("ix_message_costs_sent", "sent_at"))

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime)
    market: Mapped[str] = mapped_column(String(MARKET_LENGTH))
    category: Mapped[str | None] = mapped_column(String(CATEGORY_LENGTH))
    # inside_window or outside_window, as the send found the customer-service window.
    context: Mapped[str] = mapped_column(String(CONTEXT_LENGTH))
    card_id: Mapped[int | None] = mapped_column(ForeignKey("rate_cards.id", ondelete="SET NULL"))
    currency: Mapped[str | None] = mapped_column(String(3))
    tier: Mapped[str] = mapped_column(String(TIER_LENGTH), default=LIST_TIER)
    # None: no rule or no rate applied (no card in force, a market the card leaves out).
    estimated_billable: Mapped[bool | None] = mapped_column(Boolean)
    estimated_micros: Mapped[int | None] = mapped_column(BigInteger)
    estimated_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_billable: Mapped[bool | None] = mapped_column(Boolean)
    confirmed_category: Mapped[str | None] = mapped_column(String(CATEGORY_LENGTH))
    confirmed_type: Mapped[str | None] = mapped_column(String(CONTEXT_LENGTH))
    confirmed_micros: Mapped[int | None] = mapped_column(BigInteger)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    difference_micros: Mapped[int | None] = mapped_column(BigInteger)
