"""Accounts: tenants and users, login, API keys, and finding the tenant behind a key.

The bottom area: imports no other area (signup, which also needs billing and
messaging, lives in saas.onboarding).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from saas import cache, text
from saas.audit import services as audit
from saas.errors import Unauthenticated
from saas.extensions import db
from saas.tenants.models import ROLE_OWNER, TENANT_ACTIVE, ApiKey, Tenant, User
from saas.tenants.scoping import get_owned, owned_query
from saas.timeutil import utcnow

KEY_PREFIX = "wsk_"
MIN_PASSWORD = 8
# last_used_at is written at most this often per key, so a busy key is not a hot row.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Checked against when no user matches, so a wrong email costs what a wrong password does.
_DUMMY_HASH = generate_password_hash("not-a-real-password")

cache.watch(Tenant, ApiKey)


class AccountError(ValueError):
    """A signup or login input was refused; ``field`` names the form field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class EmailTaken(AccountError):
    """Signup with an address that already has an account (the portal does not tell the visitor)."""

    def __init__(self):
        super().__init__("email", "An account with this email already exists.")


def normalise_email(raw: str) -> str:
    try:
        result = validate_email((raw or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountError("email", str(exc)) from None
    return result.normalized.lower()


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    return slug or "tenant"


def _unique_slug(name: str) -> str:
    base = slugify(name)
    slug = base
    while db.session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


def add_tenant(name: str, email: str, password: str) -> User:
    """Add a tenant and its owner to the session (flushed, not committed).

    Raises AccountError for a bad name, email or password, or an email
    already registered. The caller finishes the signup and commits.
    """
    name = (name or "").strip()
    if not name:
        raise AccountError("company", "Company name is required.")
    if len(name) > 200:
        raise AccountError("company", "Company name is at most 200 characters.")
    if text.problem(name):
        raise AccountError("company", text.problem(name))
    email = normalise_email(email)
    if len(password or "") < MIN_PASSWORD:
        raise AccountError("password", f"Password must be at least {MIN_PASSWORD} characters.")
    # Hashed before the lookup: a registered address costs the same time as a new one.
    password_hash = generate_password_hash(password)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    tenant = Tenant(name=name, slug=_unique_slug(name))
    db.session.add(tenant)
    owner = User(tenant=tenant, email=email, password_hash=password_hash, role=ROLE_OWNER)
    db.session.add(owner)
    db.session.flush()
    return owner


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None (never says which was wrong)."""
    try:
        email = normalise_email(email)
    except AccountError:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def tenant_verified(tenant_id: int, *, session=None) -> bool:
    """A tenant is verified when its owner has verified their email address. Read in ``session``
    (default: the app context's)."""
    return (session or db.session).scalar(select(User.id).where(
        User.tenant_id == tenant_id, User.role == ROLE_OWNER, User.email_verified_at.is_not(None)).limit(1)) is not None


def create_platform_admin(email: str, password: str | None) -> tuple[User, bool]:
    """Make the user with this email a platform admin, creating it if needed.

    Returns (user, created). A new user needs a password.
    """
    email = normalise_email(email)
    user = db.session.scalar(select(User).where(User.email == email))
    created = False
    if user is None:
        if len(password or "") < MIN_PASSWORD:
            raise AccountError("password", f"Password must be at least {MIN_PASSWORD} characters.")
        user = User(email=email, password_hash=generate_password_hash(password), role=ROLE_OWNER,
                    tenant_id=None)
        db.session.add(user)
        created = True
    user.is_platform_admin = True
    db.session.commit()
    return user, created


def find_tenant(identifier: str) -> Tenant | None:
    """A tenant by its slug or by its owner's email."""
    identifier = (identifier or "").strip()
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == identifier))
    if tenant is not None:
        return tenant
    user = db.session.scalar(select(User).where(User.email == identifier.lower()))
    return user.tenant if user is not None else None


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass
class NewApiKey:
    key: ApiKey
    secret: str  # the full key, shown once


def create_api_key(tenant: Tenant, name: str, *, actor="cli") -> NewApiKey:
    """Mint a key for ``tenant`` (commits, with an audit entry). Only its sha256 is stored; the caller shows it once."""
    name = (name or "").strip() or "Default"
    if len(name) > 100:
        raise AccountError("name", "Key name is at most 100 characters.")
    if text.problem(name):
        raise AccountError("name", text.problem(name))
    public = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    key = ApiKey(tenant_id=tenant.id, name=name, prefix=f"{KEY_PREFIX}{public}", secret_hash=hash_key(secret))
    db.session.add(key)
    db.session.flush()
    audit.record(actor, "api_key.created", f"API key {key.prefix}… ({name}) created", tenant_id=tenant.id,
                 key_id=key.id, prefix=key.prefix)
    db.session.commit()
    return NewApiKey(key=key, secret=secret)


def list_api_keys(tenant: Tenant) -> list[ApiKey]:
    return list(db.session.scalars(owned_query(ApiKey, tenant).order_by(ApiKey.id.desc())))


def revoke_api_key(tenant: Tenant, key_id, *, actor="cli") -> ApiKey:
    """Revoke one of ``tenant``'s keys; idempotent (one audit entry). Raises NotFound for another's key."""
    key = get_owned(ApiKey, key_id, tenant, what="API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(actor, "api_key.revoked", f"API key {key.prefix}… ({key.name}) revoked", tenant_id=tenant.id,
                     key_id=key.id, prefix=key.prefix)
        db.session.commit()
    return key


@dataclass(frozen=True)
class TenantSnapshot:
    """What the API needs of a tenant, safe to share between requests."""

    id: int
    name: str
    slug: str
    status: str

    @property
    def is_active(self) -> bool:
        return self.status == TENANT_ACTIVE


@dataclass(frozen=True)
class KeySnapshot:
    id: int
    tenant_id: int
    last_used_at: datetime | None


def tenant_snapshot(tenant_id: int, *, session=None, caches=None) -> TenantSnapshot | None:
    """The tenant's snapshot, read in ``session`` through ``caches(name)`` (default: the app context's)."""
    session = db.session if session is None else session
    caches = cache.cache_for if caches is None else caches

    def load():
        tenant = session.get(Tenant, tenant_id)
        return TenantSnapshot(tenant.id, tenant.name, tenant.slug, tenant.status) if tenant else None

    return caches("tenants").get(tenant_id, load)


def _key_snapshot(digest: str) -> KeySnapshot | None:
    def load():
        row = db.session.execute(
            select(ApiKey.id, ApiKey.tenant_id, ApiKey.last_used_at, ApiKey.secret_hash)
            .where(ApiKey.secret_hash == digest, ApiKey.revoked_at.is_(None))).first()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            return None
        return KeySnapshot(row.id, row.tenant_id, row.last_used_at)

    return cache.cache_for("api_keys").get(digest, load)


# Per process: when this process last wrote each key's last_used_at (by the key's hash).
_last_used_written: dict[str, datetime] = {}


def api_key_digest(header: str | None) -> str:
    """The hash an ``Authorization: Bearer`` header's key is stored under (nothing is loaded).

    Raises Unauthenticated for a missing or malformed header.
    """
    if not header:
        raise Unauthenticated()
    scheme, _, raw = header.strip().partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        raise Unauthenticated()
    return hash_key(raw)


def authenticate_api_key(header: str | None) -> tuple[TenantSnapshot, KeySnapshot]:
    """The tenant and key behind an ``Authorization: Bearer`` header.

    Raises Unauthenticated for a missing, malformed, unknown or revoked key.
    Served from the per-process cache: a revoked key stops working here at
    once and in every other process within ACCESS_CACHE_SECONDS. The key's
    last_used_at is written after the response, at most once a minute.
    """
    digest = api_key_digest(header)
    key = _key_snapshot(digest)
    tenant = tenant_snapshot(key.tenant_id) if key is not None else None
    if key is None or tenant is None:
        raise Unauthenticated()
    now = utcnow()
    written = _last_used_written.get(digest) or key.last_used_at
    if written is None or now - written > LAST_USED_RESOLUTION:
        _last_used_written[digest] = now
        from saas import jobs

        jobs.enqueue("saas.tenants.services.touch_api_key", key.id, now)
    return tenant, key


def touch_api_key(key_id: int, at: datetime) -> None:
    """Record that a key was used (a follow-up job; never moves last_used_at back). Commits."""
    db.session.execute(update(ApiKey).where(ApiKey.id == key_id)
                       .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < at))
                       .values(last_used_at=at))
    db.session.commit()
