"""Automation's rows: rules, their runs (one per rule and inbound message), business hours, settings."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

FEATURE = "automation"

# Triggers.
KEYWORD = "keyword"
FIRST_MESSAGE = "first_message"
OUTSIDE_HOURS = "outside_hours"
BUTTON = "button"
TRIGGERS = (KEYWORD, FIRST_MESSAGE, OUTSIDE_HOURS, BUTTON)
# How a keyword matches the message's text.
EXACT = "exact"
CONTAINS = "contains"
REGEX = "regex"
MATCHES = (EXACT, CONTAINS, REGEX)

# A run's reply: waiting to be sent, being sent, or done.
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
DONE = "done"        # a run with nothing to send (labels, assignment ...)
SKIPPED = "skipped"  # a reply held back by a loop guard

DEFAULT_TIMEZONE = "UTC"
DEFAULT_REPLIES_PER_HOUR = 3


class Rule(db.Model):
    """A tenant's rule: when an inbound message triggers it and its conditions hold, its actions run."""

    __tablename__ = "automation_rules"
    __table_args__ = (Index("ix_automation_rules_order", "tenant_id", "priority", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Lower first; equal priorities in the order the rules were made.
    priority: Mapped[int] = mapped_column(Integer, default=100)
    stop_after_match: Mapped[bool] = mapped_column(Boolean, default=True)
    trigger: Mapped[str] = mapped_column(String(20))
    match: Mapped[str | None] = mapped_column(String(10))
    # The keyword, the pattern or the button's payload.
    pattern: Mapped[str | None] = mapped_column(String(200))
    # {"numbers": [number ids], "labels": [...], "weekdays": [0-6, Monday 0], "from": "HH:MM", "to": "HH:MM"}
    conditions: Mapped[dict] = mapped_column(JSON, default=dict)
    # [{"type": "reply", "reply": {...}}, {"type": "add_label", "label": ...}, ...] (saas.automation.actions)
    actions: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Run(db.Model):
    """A rule's run on one inbound message: what it did, and the reply it sends (sent once, by ``sending``)."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "rule_id", "wa_message_id"),
        # The hourly cap: the replies to one customer on one number lately.
        Index("ix_automation_runs_thread", "tenant_id", "phone_number_id", "wa_id", "created_at"),
        # The sweep: replies not sent yet.
        Index("ix_automation_runs_due", "created_at", postgresql_where=text("status IN ('pending', 'sending')"),
              sqlite_where=text("status IN ('pending', 'sending')")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    rule_name: Mapped[str] = mapped_column(String(100))
    wa_message_id: Mapped[str] = mapped_column(String(128))
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"))
    wa_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(10))
    # The Cloud API body of the reply (None, SQL NULL: the rule sends nothing).
    body: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    message_id: Mapped[int | None] = mapped_column(BigId)
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_title: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class BusinessHours(db.Model):
    """A number's opening hours in the tenant's time zone, and the days it is closed."""

    __tablename__ = "automation_business_hours"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"),
                                                 primary_key=True)
    # {"0": [["09:00", "17:00"]], ...}: Monday is 0; a day not named is closed.
    weekly: Mapped[dict] = mapped_column(JSON, default=dict)
    # ["2026-12-25", ...]: closed all day.
    holidays: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Settings(db.Model):
    """A tenant's automation settings: its time zone and the loop guard's hourly cap."""

    __tablename__ = "automation_settings"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    # At most this many automated replies per thread (customer and number) per hour.
    replies_per_hour: Mapped[int] = mapped_column(Integer, default=DEFAULT_REPLIES_PER_HOUR)
