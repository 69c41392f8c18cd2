from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow


class UsageCounter(db.Model):
    """One number per tenant, period and metric: the rolled-up sum of usage entries.

    Only the roll-up writes these rows, so no send ever waits on them.
    """

    __tablename__ = "usage_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "period_start", "metric"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    period_start: Mapped[datetime] = mapped_column(DateTime)
    metric: Mapped[str] = mapped_column(String(50))
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageEntry(db.Model):
    """The append-only usage ledger: one row per metric a metered send or reversal counts in.

    A send inserts its entries in its own transaction; nothing ever updates one.
    The roll-up moves entries into UsageCounter (deleting them in the same
    transaction), so counters plus the entries not yet rolled up is always
    the exact usage.
    """

    __tablename__ = "usage_entries"
    __table_args__ = (Index("ix_usage_entries_tenant_period", "tenant_id", "period_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    period_start: Mapped[datetime] = mapped_column(DateTime)
    metric: Mapped[str] = mapped_column(String(50))
    # Positive for a send, negative for its reversal.
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UsageRecord(db.Model):
    """The outbox of usage to report to Stripe's meters: one row per billable unit (a conversation, or a
    message of a category a per-message plan prices); ``metric`` says which."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_unreported", "reported_at", "voided_at"),
                      Index("ix_usage_records_subject", "tenant_id", "subject"),
                      # Exports: a tenant's records over a time range (an invoice line's period).
                      Index("ix_usage_records_tenant_created", "tenant_id", "created_at", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(50))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    # Stripe dedupes meter events on this.
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    # What was billed ("conversation:42", "message:7"); a reversal finds the record by it.
    subject: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when the unit it stood for was un-billed: never reported.
    voided_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Decided when reported: False, inside the plan's included amount (nothing sent);
    # True, past it (sent to Stripe as a meter event). None until then.
    overage: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
