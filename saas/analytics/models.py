"""The daily roll-ups and what each message has added to them.

Days are UTC dates of the message's creation (the moment its send was made), the same day the rate card that
priced it is chosen by (saas.costs.estimates). Amounts are millionths of the card's currency, as
saas.costs keeps them. ``CountedMessage`` holds each outbound message's share of the roll-ups as last
added: the consumer adds the difference between a message's share now and that one, so a repeated or late
status changes the figures once, or not at all.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from saas.costs.models import CATEGORY_LENGTH, MARKET_LENGTH
from saas.extensions import db
from saas.ids import BigId

# The counts and sums a share holds, in the order the roll-up's columns are written.
COUNTS = ("sent", "delivered", "read", "failed", "conversations", "confirmed")
AMOUNTS = ("estimated_micros", "confirmed_micros", "cost_micros")
# The key of a roll-up row after the tenant: day, number, category, market, currency.
KEY = ("day", "phone_number_id", "category", "market", "currency")
# The failure code of a failed message WhatsApp gave no code for.
NO_CODE = 0


def _count():
    return mapped_column(Integer, default=0, server_default="0")


def _amount():
    return mapped_column(BigInteger, default=0, server_default="0")


class DailyFigures(db.Model):
    """One tenant's outbound messages of one day, number, category, market and currency.

    ``cost_micros`` is the best known cost: the confirmed one where Meta confirmed it, else the estimate;
    ``confirmed`` how many of the messages were confirmed.
    """

    __tablename__ = "analytics_daily"
    __table_args__ = (Index("ix_analytics_daily_day", "day"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"), primary_key=True)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH), primary_key=True)
    market: Mapped[str] = mapped_column(String(MARKET_LENGTH), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    sent: Mapped[int] = _count()
    delivered: Mapped[int] = _count()
    read: Mapped[int] = _count()
    failed: Mapped[int] = _count()
    conversations: Mapped[int] = _count()
    confirmed: Mapped[int] = _count()
    estimated_micros: Mapped[int] = _amount()
    confirmed_micros: Mapped[int] = _amount()
    cost_micros: Mapped[int] = _amount()


class DailyFailures(db.Model):
    """How many of a tenant's messages of one day and number failed with each of WhatsApp's error codes."""

    __tablename__ = "analytics_daily_failures"
    __table_args__ = (Index("ix_analytics_daily_failures_day", "day"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"), primary_key=True)
    error_code: Mapped[int] = mapped_column(Integer, primary_key=True)
    failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CountedMessage(db.Model):
    """One outbound message's share of the roll-ups, as last added (see the module's docstring)."""

    __tablename__ = "analytics_counted"
    __table_args__ = (Index("ix_analytics_counted_day", "day"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    # No foreign key: a message row pruned (or its month's partition dropped) leaves its share counted, as the
    # roll-ups keep its day; and a rebuild of millions of shares checks no reference per row.
    message_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    phone_number_id: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))
    market: Mapped[str] = mapped_column(String(MARKET_LENGTH))
    currency: Mapped[str] = mapped_column(String(3))
    sent: Mapped[int] = mapped_column(SmallInteger)
    delivered: Mapped[int] = mapped_column(SmallInteger)
    read: Mapped[int] = mapped_column(SmallInteger)
    failed: Mapped[int] = mapped_column(SmallInteger)
    conversations: Mapped[int] = mapped_column(SmallInteger)
    confirmed: Mapped[int] = mapped_column(SmallInteger)
    error_code: Mapped[int] = mapped_column(Integer)
    estimated_micros: Mapped[int] = mapped_column(BigInteger)
    confirmed_micros: Mapped[int] = mapped_column(BigInteger)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
