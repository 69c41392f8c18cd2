from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

MODE_LIVE = "live"
MODE_SANDBOX = "sandbox"

# The order a message's status moves in; it never moves back.
STATUS_RANK = {"pending": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}


class PhoneNumber(db.Model):
    __tablename__ = "phone_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Meta's id for the number (a generated one of the same form for sandbox numbers).
    phone_number_id: Mapped[str] = mapped_column(String(64), unique=True)
    waba_id: Mapped[str | None] = mapped_column(String(64))
    display_number: Mapped[str] = mapped_column(String(32))
    verified_name: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(10), default=MODE_SANDBOX)
    # Fernet ciphertext; the key comes from TOKEN_ENCRYPTION_KEY.
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    # The token's last characters: all the portal ever shows of it.
    token_last4: Mapped[str | None] = mapped_column(String(4))
    # What the Graph API said of a live number at its last check.
    quality_rating: Mapped[str | None] = mapped_column(String(20))
    messaging_limit_tier: Mapped[str | None] = mapped_column(String(30))
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_check_error: Mapped[str | None] = mapped_column(String(300))
    # Set when the tenant disconnects a live number: it sends nothing more, its token is
    # deleted, and the row stays for the messages that name it (and for reconnecting).
    disconnected_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def is_live(self) -> bool:
        return self.mode == MODE_LIVE

    @property
    def connected(self) -> bool:
        return self.disconnected_at is None


class Conversation(db.Model):
    """A 24-hour window per tenant, contact and category: the billable unit."""

    __tablename__ = "conversations"
    __table_args__ = (
        # Two sends racing to open the same window collide here; one wins.
        UniqueConstraint("tenant_id", "contact", "category", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    contact: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    seq: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    origin: Mapped[str] = mapped_column(String(30))
    period_start: Mapped[datetime] = mapped_column(DateTime)


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_messages_tenant_created", "tenant_id", "id"),
        # The recovery job's query: sends interrupted before they were settled.
        Index("ix_messages_pending", "created_at", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        # The customer-service window: a contact's latest inbound (and first outbound) on a number.
        Index("ix_messages_contact", "tenant_id", "phone_number_id", "wa_id", "direction", "created_at"),
        # The messaging limit: users a number reached with business-initiated messages in 24 h.
        Index("ix_messages_reach", "tenant_id", "phone_number_id", "created_at", "wa_id",
              postgresql_where=text("business_initiated"), sqlite_where=text("business_initiated")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(3))
    wa_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(30))
    body_summary: Mapped[str] = mapped_column(String(300), default="")
    wa_message_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_title: Mapped[str | None] = mapped_column(String(300))
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    opened_conversation: Mapped[bool] = mapped_column(default=False)
    # A template sent outside the contact's customer-service window: it counts toward the
    # number's messaging limit (unique users reached in a moving 24 h).
    business_initiated: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # The billing period the send was metered in (its reversal is taken back from the same one).
    period_start: Mapped[datetime | None] = mapped_column(DateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # What the send answered, replayed for a repeated Idempotency-Key.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime)

    phone_number = relationship("PhoneNumber", lazy="selectin")
    conversation = relationship("Conversation")


class Template(db.Model):
    """A message template of a tenant's WhatsApp Business Account, as Meta last told us."""

    __tablename__ = "templates"
    __table_args__ = (
        # Meta names a template by (name, language) within its WABA.
        UniqueConstraint("tenant_id", "waba_id", "name", "language"),
        # Webhooks name the WABA and Meta's template id, not the tenant.
        Index("ix_templates_waba_meta", "waba_id", "meta_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    waba_id: Mapped[str] = mapped_column(String(64))
    # Meta's id for the template (None only between a create and Meta's answer).
    meta_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(15))
    # Meta's: APPROVED, PENDING, REJECTED, PAUSED, DISABLED, IN_APPEAL, PENDING_DELETION, ...
    status: Mapped[str] = mapped_column(String(30))
    # Meta's: MARKETING, UTILITY, AUTHENTICATION.
    category: Mapped[str] = mapped_column(String(30))
    components: Mapped[list] = mapped_column(JSON, default=list)
    # GREEN, YELLOW, RED, UNKNOWN (from the list and message_template_quality_update).
    quality_score: Mapped[str | None] = mapped_column(String(20))
    # Why Meta rejected, paused or disabled it, in Meta's words.
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class WebhookEndpoint(db.Model):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    signing_secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebhookDelivery(db.Model):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
