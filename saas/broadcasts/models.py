"""A broadcast (a template to an audience) and its recipients, one row per contact with its frozen
variables and its outcome."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

# A broadcast's life: a draft is checked and edited (a large audience's check runs as a job, the
# broadcast ``checking`` until it is ready, then a draft again); started (now or at its time) it runs
# until every recipient has an outcome; pause and resume between batches; cancel skips what is left.
CHECKING = "checking"
DRAFT = "draft"
SCHEDULED = "scheduled"
RUNNING = "running"
PAUSED = "paused"
CANCELLED = "cancelled"
COMPLETED = "completed"
STATUSES = (CHECKING, DRAFT, SCHEDULED, RUNNING, PAUSED, CANCELLED, COMPLETED)

RECURRENCES = ("daily", "weekly")

# A recipient's outcome. ``sending``: claimed by a worker, its send under way; ``unknown``: the send
# may have left but its answer was lost, so it is never sent again by itself.
QUEUED = "queued"
SENDING = "sending"
UNKNOWN = "unknown"
SENT = "sent"
DELIVERED = "delivered"
READ = "read"
FAILED = "failed"
SKIPPED = "skipped"
RECIPIENT_STATUSES = (QUEUED, SENDING, SENT, DELIVERED, READ, FAILED, SKIPPED, UNKNOWN)
# What WhatsApp's statuses may move an outcome to, and from: never backwards, never out of a refusal.
RANK = {QUEUED: 0, SENDING: 1, UNKNOWN: 2, SENT: 3, DELIVERED: 4, READ: 5}
FINAL = (FAILED, SKIPPED)

DEFAULT_RATE = 80      # messages per second: WhatsApp's default throughput per number
MAX_RATE = 1000        # WhatsApp's higher throughput tier


class Broadcast(db.Model):
    __tablename__ = "broadcasts"
    __table_args__ = (
        Index("ix_broadcasts_tenant", "tenant_id", "id"),
        # The tick's query: scheduled broadcasts that are due; the engine's: running ones.
        Index("ix_broadcasts_status_due", "status", "schedule_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"))
    template_name: Mapped[str] = mapped_column(String(512))
    template_language: Mapped[str] = mapped_column(String(15))
    # Meta's: MARKETING, UTILITY, AUTHENTICATION (as the template was when the broadcast was made).
    template_category: Mapped[str] = mapped_column(String(30))
    # Per template variable ("body.1", "header.1", "body.first_name"): {"field": "name" | "wa_id" |
    # "attr:<key>"} or {"value": "..."}, with an optional "default" used when the field is empty.
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    # Who it goes to: {"all": bool, "labels": [...], "contact_ids": [...], "country": [...],
    # "attributes": {key: value}} (an uploaded list is stored as the contact ids it named).
    audience: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=DRAFT)
    # When it starts (UTC), as the tenant wrote it in its time zone (an IANA name), and whether it repeats.
    schedule_at: Mapped[datetime | None] = mapped_column(DateTime)
    schedule_local: Mapped[str | None] = mapped_column(String(19))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    recurrence: Mapped[str | None] = mapped_column(String(10))
    # The broadcast a recurring run was made from (its first).
    series_id: Mapped[int | None] = mapped_column(BigId)
    messages_per_second: Mapped[int] = mapped_column(Integer, default=DEFAULT_RATE)
    # Retry 131049 (Meta's per-user marketing limit) once, a day later: the tenant's choice.
    retry_per_user_limit: Mapped[bool] = mapped_column(Boolean, default=False)
    # The check before sending, as last shown (saas.broadcasts.check), and when.
    check_result: Mapped[dict | None] = mapped_column(JSON)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # While ``checking``: the worker holding the check's job until ``check_lease_until``, and how far it
    # got ({"checked", "audience", "through", "tally", "rules"}, committed a chunk at a time, so the next
    # worker goes on from there); after a check that failed, {"error": ...}.
    check_lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    check_progress: Mapped[dict | None] = mapped_column(JSON)
    # Recipients are written once, when it starts: ``frozen_through`` is the last contact id written (a
    # crash mid-way carries on from it), ``frozen_at`` when all were.
    frozen_through: Mapped[int | None] = mapped_column(BigId)
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime)
    recipients_total: Mapped[int] = mapped_column(Integer, default=0)
    # The engine's round robin: the broadcast that sent longest ago goes next.
    last_batch_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class BroadcastRecipient(db.Model):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        # One row per contact and broadcast: a second freeze of the same contact writes nothing.
        UniqueConstraint("tenant_id", "broadcast_id", "contact_id"),
        # The claim: a broadcast's queued recipients in order; the report's counts by status.
        Index("ix_broadcast_recipients_claim", "tenant_id", "broadcast_id", "status", "id"),
        # A send's outcome, found by its message.
        Index("ix_broadcast_recipients_message", "tenant_id", "message_id"),
        # Claims a dead worker left.
        Index("ix_broadcast_recipients_sending", "claimed_at", postgresql_where=text("status = 'sending'"),
              sqlite_where=text("status = 'sending'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    broadcast_id: Mapped[int] = mapped_column(BigId, ForeignKey("broadcasts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId)
    wa_id: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    # The template's variables for this contact, rendered when the broadcast started.
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default=QUEUED)
    skip_reason: Mapped[str | None] = mapped_column(String(40))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_title: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    message_id: Mapped[int | None] = mapped_column(BigId)
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime)


class NumberPacing(db.Model):
    """How many messages per second a tenant's number may send (WhatsApp's throughput: 80 by default,
    up to 1,000 once Meta raises it); broadcasts from the number share it."""

    __tablename__ = "number_pacing"

    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"),
                                                 primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    messages_per_second: Mapped[int] = mapped_column(Integer, default=DEFAULT_RATE)
