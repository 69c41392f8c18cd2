from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
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
    # What the Graph API said of a live number at its last check, or WhatsApp's
    # phone_number_quality_update webhooks since: GREEN, YELLOW, RED or UNKNOWN; TIER_1K ...
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
        # Exports: a tenant's messages over a time range, in time order.
        Index("ix_messages_tenant_created_at", "tenant_id", "created_at", "id"),
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
    error_details: Mapped[str | None] = mapped_column(String(500))
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
    # The conversation category the send was metered in: a send settled as interrupted whose
    # answer arrives late is billed again in the same one, exactly once.
    category: Mapped[str | None] = mapped_column(String(20))
    # The tenant's own biz_opaque_callback_data, kept here only when it is too long to travel to
    # WhatsApp beside our message id (saas.messaging.outbound.callback_data).
    callback_data: Mapped[str | None] = mapped_column(String(512))
    # The Cloud API's messages[0].message_status for a template send (accepted,
    # held_for_quality_assessment, paused): kept as WhatsApp answered it.
    message_status: Mapped[str | None] = mapped_column(String(40))
    # What the send answered, replayed for a repeated Idempotency-Key.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # What WhatsApp's status webhooks say it charges for the message (the ground truth
    # that metering is reconciled against): its conversation and pricing objects.
    wa_conversation_id: Mapped[str | None] = mapped_column(String(128))
    wa_conversation_origin: Mapped[str | None] = mapped_column(String(40))
    wa_conversation_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    pricing_billable: Mapped[bool | None] = mapped_column(Boolean)
    pricing_model: Mapped[str | None] = mapped_column(String(20))
    pricing_category: Mapped[str | None] = mapped_column(String(40))
    pricing_type: Mapped[str | None] = mapped_column(String(40))
    # An inbound message exactly as WhatsApp's webhook carried it.
    raw_message: Mapped[dict | None] = mapped_column(JSON)

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


class ServiceWindow(db.Model):
    """The customer-service window between one of a tenant's numbers and a contact.

    Every message the contact sends opens or refreshes it for 24 hours; while
    it is open the business may send free-form messages to the contact. Kept
    apart from Conversation, the billable unit: an inbound message bills nothing.
    ``contact`` is the contact's wa_id, or Meta's user_id (BSUID) for a user
    seen without a phone number; a contact seen with both has a row for each.
    """

    __tablename__ = "service_windows"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"),
                                                 primary_key=True)
    contact: Mapped[str] = mapped_column(String(64), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    last_inbound_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class WhatsAppNotification(db.Model):
    """One POST of WhatsApp's webhook, stored before it is answered, applied after.

    ``body`` is the request body exactly as signed. ``processed_at`` is set
    once it has been applied; until then the sweep applies it again.
    """

    __tablename__ = "whatsapp_notifications"
    __table_args__ = (
        Index("ix_whatsapp_notifications_unprocessed", "received_at",
              postgresql_where=text("processed_at IS NULL"), sqlite_where=text("processed_at IS NULL")),
        Index("ix_whatsapp_notifications_processed", "processed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What applying it did, in a line: counts, unknown numbers, fields stored without a handler.
    outcome: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(String(1000))


class UnappliedItem(db.Model):
    """One item of a WhatsApp notification that could not be applied, kept with why.

    An item is a status, an inbound message, or a change of another field.
    ``body`` is a notification holding that item alone, in Meta's shape, so it
    applies again by itself. ``next_try_at`` is when the sweep tries it again:
    set after an error, None for an item refused for what it holds (or past
    its last try), which only an operator sends again. ``applied_at`` is set
    once a later try applies it.
    """

    __tablename__ = "whatsapp_unapplied_items"
    __table_args__ = (
        UniqueConstraint("notification_id", "location"),
        Index("ix_whatsapp_unapplied_items_due", "next_try_at",
              postgresql_where=text("applied_at IS NULL"), sqlite_where=text("applied_at IS NULL")),
        Index("ix_whatsapp_unapplied_items_open", "failed_at",
              postgresql_where=text("applied_at IS NULL"), sqlite_where=text("applied_at IS NULL")),
        Index("ix_whatsapp_unapplied_items_applied", "applied_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Kept after the notification itself is pruned: the body holds all that is needed.
    notification_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("whatsapp_notifications.id", ondelete="SET NULL"))
    location: Mapped[str] = mapped_column(String(120))  # e.g. "entry 0, change 1, statuses[3]"
    field: Mapped[str] = mapped_column(String(80))
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(String(1000))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    failed_at: Mapped[datetime] = mapped_column(DateTime)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebhookEndpoint(db.Model):
    """A tenant's own URL, to which every status and inbound message of its numbers is forwarded."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True, unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Fernet ciphertext (TOKEN_ENCRYPTION_KEY) of the signing secret, shown to the tenant once.
    signing_secret_encrypted: Mapped[str] = mapped_column(Text)
    # The secret's last characters, so the tenant can tell which one is in force.
    secret_hint: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


DELIVERY_PENDING = "pending"
DELIVERY_DELIVERED = "delivered"
DELIVERY_DEAD = "dead"


class WebhookDelivery(db.Model):
    """One event (a status or an inbound message) forwarded to a tenant's endpoint.

    Deliveries with the same ``sequence_key`` (one message's events) go out in
    the order they were made: a later one waits while an earlier one is pending.
    ``event_key`` makes an event forwarded once however often WhatsApp repeats it.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "endpoint_id", "event_key"),
        Index("ix_webhook_deliveries_due", "next_attempt_at",
              postgresql_where=text("state = 'pending'"), sqlite_where=text("state = 'pending'")),
        Index("ix_webhook_deliveries_sequence", "tenant_id", "endpoint_id", "sequence_key", "id",
              postgresql_where=text("state = 'pending'"), sqlite_where=text("state = 'pending'")),
        Index("ix_webhook_deliveries_tenant_created", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(50))
    event_key: Mapped[str] = mapped_column(String(200))
    sequence_key: Mapped[str] = mapped_column(String(160))
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10), default=DELIVERY_PENDING, server_default=DELIVERY_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    dead_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    replay_of: Mapped[int | None] = mapped_column(BigId, ForeignKey("webhook_deliveries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebhookAttempt(db.Model):
    """One try of a delivery: when, what the endpoint answered, or why it could not be reached."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "tenant_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)


class Media(db.Model):
    """A WhatsApp media id a tenant may read or delete through us: one it uploaded, or one an
    inbound message carried. Media ids are Meta's; this row is what scopes one to a tenant."""

    __tablename__ = "media"

    media_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(10))  # "upload" or "inbound"
    mime_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
