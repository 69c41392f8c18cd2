"""Orders' rows: the order, the events it took, the notification each state sends, the template mapped to
each event, and the tenant's shop connections."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

# Notification statuses: written ``pending`` with the event, ``sending`` while claimed, then final.
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"
NOTIFICATION_STATUSES = (PENDING, SENDING, SENT, FAILED, SKIPPED)

# Where an order's events come from.
SOURCES = ("api", "shopify", "woocommerce", "whatsapp", "portal")
PLATFORMS = ("shopify", "woocommerce")

REFERENCE_MAX = 100


class Order(db.Model):
    """A tenant's order, named by the shop's reference, in one state of saas.orders.states."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "reference"),
        # The listing, newest first.
        Index("ix_orders_tenant_id", "tenant_id", "id"),
        Index("ix_orders_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX))
    # What the shop shows its customer ("#1001"); the reference when it has no other name.
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(20))
    state_at: Mapped[datetime] = mapped_column(DateTime)
    wa_id: Mapped[str | None] = mapped_column(String(32))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="SET NULL"))
    # The number the order is about (a cart's, or the one its notifications go from).
    phone_number_id: Mapped[int | None] = mapped_column(ForeignKey("phone_numbers.id", ondelete="SET NULL"))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    # [{"name", "quantity", "price", "sku"}], at most saas.orders.fields.MAX_ITEMS.
    items: Mapped[list] = mapped_column(JSON, default=list)
    total: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(3))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    tracking_url: Mapped[str | None] = mapped_column(String(2048))
    carrier: Mapped[str | None] = mapped_column(String(100))
    # A WhatsApp cart's message, so a repeated webhook makes no second order.
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OrderEvent(db.Model):
    """A state an order reached, once: when it happened (the shop's clock), where it came from, its data."""

    __tablename__ = "order_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(12))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OrderNotification(db.Model):
    """The message one state of an order sends, once: its body frozen when the state was reached, sent
    after that transaction commits (saas.orders.notifications), with an Idempotency-Key of its own."""

    __tablename__ = "order_notifications"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id", "event"),
        # The sweep: notifications a crash left pending or sending.
        Index("ix_order_notifications_open", "status", "created_at",
              postgresql_where=text("status IN ('pending', 'sending')"),
              sqlite_where=text("status IN ('pending', 'sending')")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    phone_number_id: Mapped[int | None] = mapped_column(ForeignKey("phone_numbers.id", ondelete="SET NULL"))
    template_name: Mapped[str] = mapped_column(String(512))
    template_language: Mapped[str] = mapped_column(String(15))
    # The Cloud API body sent (the same on every try, so the Idempotency-Key replays it).
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    message_id: Mapped[int | None] = mapped_column(BigId)
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_title: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class NotificationMapping(db.Model):
    """The approved utility template an event type sends, from which number, and how its variables fill."""

    __tablename__ = "order_notification_mappings"
    __table_args__ = (UniqueConstraint("tenant_id", "event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(20))
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"))
    template_name: Mapped[str] = mapped_column(String(512))
    template_language: Mapped[str] = mapped_column(String(15))
    # Meta's category when it was mapped (UTILITY): a later MARKETING is flagged.
    category: Mapped[str] = mapped_column(String(20))
    # variable -> {"field": <order field>} or {"value": text}, with an optional "default".
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShopConnection(db.Model):
    """A tenant's shop sending order webhooks: its own URL (``token``) and signing secret (encrypted)."""

    __tablename__ = "shop_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "platform"), UniqueConstraint("token"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    token: Mapped[str] = mapped_column(String(64))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_received_at: Mapped[datetime | None] = mapped_column(DateTime)
