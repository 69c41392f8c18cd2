"""Accounts: signup, login, API keys, and finding the tenant behind a key."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from saas.errors import Unauthenticated
from saas.extensions import db
from saas.tenants.models import ROLE_OWNER, ApiKey, Tenant, User
from saas.tenants.scoping import get_owned, owned_query
from saas.timeutil import utcnow

KEY_PREFIX = "wsk_"
MIN_PASSWORD = 8
# last_used_at is written at most this often per key, so a busy key is not a hot row.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Checked against when no user matches, so a wrong email costs what a wrong password does.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class AccountError(ValueError):
    """A signup or login input was refused; ``field`` names the form field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


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


def create_tenant(name: str, email: str, password: str, *, plan_code: str = "free") -> User:
    """Create a tenant with its owner, its subscription and its sandbox number.

    One transaction: either all of it is written or none. Raises AccountError
    for a bad name, email or password, or an email already registered.
    """
    from saas.billing.services import start_subscription
    from saas.messaging.numbers import create_sandbox_number

    name = (name or "").strip()
    if not name:
        raise AccountError("company", "Company name is required.")
    if len(name) > 200:
        raise AccountError("company", "Company name is at most 200 characters.")
    email = normalise_email(email)
    if len(password or "") < MIN_PASSWORD:
        raise AccountError("password", f"Password must be at least {MIN_PASSWORD} characters.")
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError("email", "An account with this email already exists.")

    try:
        tenant = Tenant(name=name, slug=_unique_slug(name))
        db.session.add(tenant)
        owner = User(tenant=tenant, email=email, password_hash=generate_password_hash(password),
                     role=ROLE_OWNER)
        db.session.add(owner)
        db.session.flush()
        start_subscription(tenant, plan_code)
        create_sandbox_number(tenant)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError("email", "An account with this email already exists.") from None
    except Exception:
        db.session.rollback()
        raise
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


def create_api_key(tenant: Tenant, name: str) -> NewApiKey:
    """Mint a key for ``tenant``. Only its sha256 is stored; the caller shows it once."""
    name = (name or "").strip() or "Default"
    if len(name) > 100:
        raise AccountError("name", "Key name is at most 100 characters.")
    public = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    key = ApiKey(tenant_id=tenant.id, name=name, prefix=f"{KEY_PREFIX}{public}", secret_hash=hash_key(secret))
    db.session.add(key)
    db.session.commit()
    return NewApiKey(key=key, secret=secret)


def list_api_keys(tenant: Tenant) -> list[ApiKey]:
    return list(db.session.scalars(owned_query(ApiKey, tenant).order_by(ApiKey.id.desc())))


def revoke_api_key(tenant: Tenant, key_id) -> ApiKey:
    """Revoke one of ``tenant``'s keys; idempotent. Raises NotFound for another's key."""
    key = get_owned(ApiKey, key_id, tenant, what="API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    return key


def authenticate_api_key(header: str | None) -> tuple[Tenant, ApiKey]:
    """The tenant and key behind an ``Authorization: Bearer`` header.

    Raises Unauthenticated for a missing, malformed, unknown or revoked key.
    """
    if not header:
        raise Unauthenticated()
    scheme, _, raw = header.strip().partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        raise Unauthenticated()
    digest = hash_key(raw)
    key = db.session.scalar(select(ApiKey).where(ApiKey.secret_hash == digest))
    if key is None or not hmac.compare_digest(key.secret_hash, digest) or key.revoked_at is not None:
        raise Unauthenticated()
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        db.session.commit()
    return key.tenant, key
