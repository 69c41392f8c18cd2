from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import BigId
from saas.timeutil import utcnow

# Where a contact, or a consent change, came from.
SOURCE_API = "api"
SOURCE_IMPORT = "import"
SOURCE_INBOUND = "inbound"
SOURCE_PORTAL = "portal"
SOURCE_KEYWORD = "keyword"
SOURCE_FORM = "form"
SOURCE_WHATSAPP = "whatsapp"  # Meta's user_preferences webhook, or error 131050

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"

# The types a custom attribute may have.
ATTRIBUTE_TYPES = ("text", "number", "boolean", "date")


class Contact(db.Model):
    """Someone a tenant messages: its WhatsApp id (digits, as WhatsApp's ``wa_id``) or Meta's
    business-scoped user id, or both; a name; typed custom attributes (``attributes``, keyed by
    the tenant's AttributeDefinition keys)."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "wa_id"),
        UniqueConstraint("tenant_id", "user_id"),
        Index("ix_contacts_tenant_created", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    wa_id: Mapped[str | None] = mapped_column(String(20))
    user_id: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    # ISO 3166 region of the number (phonenumbers), e.g. "TR"; None when unknown.
    country: Mapped[str | None] = mapped_column(String(2))
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(20), default=SOURCE_API)
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ContactLabel(db.Model):
    __tablename__ = "contact_labels"
    __table_args__ = (
        UniqueConstraint("contact_id", "label"),
        Index("ix_contact_labels_tenant_label", "tenant_id", "label"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(50))


class AttributeDefinition(db.Model):
    """A tenant's custom contact attribute: its key and type (ATTRIBUTE_TYPES)."""

    __tablename__ = "contact_attribute_definitions"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Consent(db.Model):
    """A contact's current consent to marketing from one of the tenant's numbers."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("contact_id", "phone_number_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    # Who made the change: a user's email, an API key's prefix, "whatsapp", "import #12".
    actor: Mapped[str | None] = mapped_column(String(200))
    # What the contact agreed to or said: the form's wording, the keyword, the webhook's value.
    proof: Mapped[str | None] = mapped_column(String(1000))
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ContactEvent(db.Model):
    """A contact's history: created, changed, labelled, opted in or out, imported, erased."""

    __tablename__ = "contact_events"
    __table_args__ = (Index("ix_contact_events_contact", "contact_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    source: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ConsentKeyword(db.Model):
    """A word that, sent alone by a contact, opts it out (or back in); a tenant with none uses the defaults."""

    __tablename__ = "consent_keywords"
    __table_args__ = (UniqueConstraint("tenant_id", "keyword"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    keyword: Mapped[str] = mapped_column(String(40))
    # OPTED_OUT or OPTED_IN: the state the keyword moves its sender to.
    action: Mapped[str] = mapped_column(String(10))


class ContactImport(db.Model):
    """A CSV of contacts being imported in the background, its column mapping and its progress."""

    __tablename__ = "contact_imports"
    # Imports a worker should take: queued ones, and running ones whose worker's lease ran out.
    __table_args__ = (Index("ix_contact_imports_status_lease", "status", "lease_until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    # The uploaded file as it came; read row by row, never parsed whole.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    # CSV column -> contact field ("wa_id", "name", "labels", "attr:<key>", or "" to skip).
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    # Whether imported contacts are recorded as opted in, with ``consent_proof``.
    opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_proof: Mapped[str | None] = mapped_column(String(1000))
    phone_number_id: Mapped[int | None] = mapped_column(ForeignKey("phone_numbers.id", ondelete="SET NULL"))
    # uploaded (waiting for its column mapping), queued, running, done, failed
    status: Mapped[str] = mapped_column(String(12), default="queued")
    # While running: until when the worker that claimed it holds it. It renews the lease with each batch it
    # commits; a lease that ran out means the worker died, and another resumes from processed_rows.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    merged_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class ContactImportError(db.Model):
    """A row an import could not take, with why: downloadable as CSV."""

    __tablename__ = "contact_import_errors"
    __table_args__ = (Index("ix_contact_import_errors_import", "import_id", "row_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("contact_imports.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(300))
    raw: Mapped[str | None] = mapped_column(String(2000))
