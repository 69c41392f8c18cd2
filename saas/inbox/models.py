"""The inbox's rows: threads, their entries (messages, notes, rule runs), agents' availability, saved replies."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

OPEN = "open"
PENDING = "pending"
RESOLVED = "resolved"
STATUSES = (OPEN, PENDING, RESOLVED)

# Who wrote an entry.
CUSTOMER = "customer"
AGENT = "agent"
AUTOMATION = "automation"
API = "api"
BROADCAST = "broadcast"
SYSTEM = "system"
ORDER = "order"  # an order's notification (saas.orders)
AUTHORS = (CUSTOMER, AGENT, AUTOMATION, API, BROADCAST, SYSTEM, ORDER)

# What an entry is.
MESSAGE = "message"
NOTE = "note"
RULE_RUN = "rule_run"
EVENT = "event"  # assigned, resolved, reopened: the thread's own history


class Thread(db.Model):
    """A tenant's conversation with one customer on one of its numbers."""

    __tablename__ = "inbox_threads"
    __table_args__ = (
        UniqueConstraint("tenant_id", "phone_number_id", "wa_id"),
        # The queue: open threads by the time their customer-service window has left, then waiting time.
        Index("ix_inbox_threads_queue", "tenant_id", "status", "window_expires_at", "waiting_since"),
        # Hand-out: the longest-waiting unassigned open threads.
        Index("ix_inbox_threads_unassigned", "tenant_id", "waiting_since",
              postgresql_where=text("status = 'open' AND assignee_id IS NULL"),
              sqlite_where=text("status = 'open' AND assignee_id IS NULL")),
        Index("ix_inbox_threads_assignee", "tenant_id", "assignee_id", "status"),
        # Live updates and the API's listing.
        Index("ix_inbox_threads_changed", "tenant_id", "updated_at"),
        Index("ix_inbox_threads_activity", "tenant_id", "last_message_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"))
    wa_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="SET NULL"))
    # The contact's name as last seen (WhatsApp's profile name, or the contact's), for the queue and search.
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When the customer's free customer-service window closes (their last message's time + 24 h).
    window_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Since when the customer waits for an answer (their oldest unanswered message); None: answered.
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_preview: Mapped[str] = mapped_column(String(300), default="")
    unread: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Entry(db.Model):
    """One line of a thread: a message either way, an internal note, a rule run or a change of the thread."""

    __tablename__ = "inbox_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "wa_message_id"),
        UniqueConstraint("tenant_id", "message_id"),
        # A thread's entries in WhatsApp's order (``at``), whatever order they arrived in.
        Index("ix_inbox_entries_thread", "tenant_id", "thread_id", "at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    thread_id: Mapped[int] = mapped_column(BigId, ForeignKey("inbox_threads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), default=MESSAGE)
    direction: Mapped[str | None] = mapped_column(String(3))  # in, out; None for notes and events
    author: Mapped[str] = mapped_column(String(12))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Our Message row and WhatsApp's id for a message entry.
    message_id: Mapped[int | None] = mapped_column(BigId)
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(30), default="text")
    # What the page shows: the text, a media id and caption, a location, a cart ... (saas.inbox.rendering).
    content: Mapped[dict] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(String(4096), default="")
    # Outbound delivery: accepted, sent, delivered, read (never backwards), or failed with Meta's refusal.
    status: Mapped[str | None] = mapped_column(String(12))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_title: Mapped[str | None] = mapped_column(String(300))
    # When it happened by WhatsApp's clock (the message's timestamp), the order entries are shown in.
    at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Agent(db.Model):
    """A member answering the inbox: whether they take new chats now, and how many open threads at most."""

    __tablename__ = "inbox_agents"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    available: Mapped[bool] = mapped_column(Boolean, default=False)
    max_open: Mapped[int] = mapped_column(Integer, default=10)
    # Round robin: the agent handed a thread longest ago goes first.
    last_assigned_at: Mapped[datetime | None] = mapped_column(DateTime)


class Settings(db.Model):
    """A tenant's inbox settings."""

    __tablename__ = "inbox_settings"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    auto_assign: Mapped[bool] = mapped_column(Boolean, default=False)


class SavedReply(db.Model):
    """A tenant's canned answer, offered in the composer while the window is open."""

    __tablename__ = "inbox_saved_replies"
    __table_args__ = (UniqueConstraint("tenant_id", "shortcut"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
