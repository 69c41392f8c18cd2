from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.extensions import db
from saas.timeutil import utcnow

TENANT_ACTIVE = "active"
TENANT_SUSPENDED = "suspended"

ROLE_OWNER = "owner"
ROLE_ADMIN = "admin"
ROLE_DEVELOPER = "developer"
ROLE_BILLING = "billing"
# Answers the support inbox and sees nothing else of the tenant.
ROLE_AGENT = "agent"
# Highest first: the order the members page offers them in.
ROLES = (ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER, ROLE_BILLING, ROLE_AGENT)


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=TENANT_ACTIVE)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    users = relationship("User", back_populates="tenant", lazy="selectin")

    @property
    def is_active(self) -> bool:
        return self.status == TENANT_ACTIVE


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Platform admins may stand outside every tenant.
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=ROLE_DEVELOPER)
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Part of the login session's user id: bumping it (logout, password change, "log out
    # everywhere") makes every session cookie issued before useless, copies included.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Two-factor login (TOTP): the secret encrypted with TOKEN_ENCRYPTION_KEY, set once confirmed;
    # the last time step a code was accepted for, so a code works once.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # When the user opened the emailed verification link (None: not yet); a tenant is verified when its owner is.
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When a verification email was last sent (resending is throttled on it).
    verification_sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    tenant = relationship("Tenant", back_populates="users")

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class RecoveryCode(db.Model):
    """A one-time two-factor recovery code: only its sha256 is kept; shown once when made."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32))
    # sha256 of the whole key; the key itself is shown once and never stored.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    tenant = relationship("Tenant")


class Invite(db.Model):
    """An invitation to join a tenant with a role; the link's token is stored only as its sha256."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    tenant = relationship("Tenant")
    invited_by = relationship("User")

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()
