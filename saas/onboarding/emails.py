"""Email ownership: verification at signup, password reset, and the warning a repeated signup sends.

Links carry itsdangerous tokens signed with SECRET_KEY. A verification link names the user and the
address (EMAIL_TOKEN_MAX_AGE); a reset link names the user and a digest of the current password hash
(PASSWORD_RESET_MAX_AGE), so it dies as soon as the password changes, i.e. once it has been used.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from saas.extensions import db
from saas.mail import send_mail
from saas.tenants.models import User
from saas.tenants.services import MIN_PASSWORD, AccountError, normalise_email
from saas.timeutil import utcnow

VERIFY_SALT = "verify-email"
RESET_SALT = "reset-password"
RESEND_EVERY = timedelta(seconds=60)


class LinkError(ValueError):
    """A link that cannot be used; ``reason`` is "expired", "invalid" or "used"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _load(salt: str, token: str, max_age: int) -> dict:
    try:
        data = _serializer(salt).loads(token or "", max_age=max_age)
    except SignatureExpired:
        raise LinkError("expired") from None
    except BadSignature:
        raise LinkError("invalid") from None
    if not isinstance(data, dict):
        raise LinkError("invalid")
    return data


def _external(endpoint: str, **values) -> str:
    # Never the request's Host header unless trusted: a forged Host must not put its domain in our emails.
    from saas.urls import public_url

    return public_url(endpoint, **values)


# -- verification ---------------------------------------------------------------

def verification_token(user: User) -> str:
    return _serializer(VERIFY_SALT).dumps({"u": user.id, "e": user.email})


def send_verification(user: User) -> None:
    """Email ``user`` a verification link and note when (commits)."""
    link = _external("portal.email_links.verify_email", token=verification_token(user))
    user.verification_sent_at = utcnow()
    db.session.commit()
    send_mail(user.email, "Verify your email address",
              f"Welcome to Relay!\n\nOpen this link and press the button to verify {user.email}:\n\n{link}\n\n"
              f"The link works for {current_app.config['EMAIL_TOKEN_MAX_AGE'] // 3600} hours. Until you verify, "
              "you can send from your sandbox number only.\n\nIf you did not sign up, ignore this email.\n")


def resend_verification(user: User) -> bool:
    """Send a new link unless one was sent in the last minute (or the user is verified). True when sent."""
    if user.email_verified_at is not None:
        return False
    if user.verification_sent_at is not None and utcnow() - user.verification_sent_at < RESEND_EVERY:
        return False
    send_verification(user)
    return True


@dataclass
class Verified:
    user: User
    first_time: bool


def verification_user(token: str) -> User:
    """The user a verification link names; raises LinkError."""
    data = _load(VERIFY_SALT, token, current_app.config["EMAIL_TOKEN_MAX_AGE"])
    user = db.session.get(User, data.get("u")) if isinstance(data.get("u"), int) else None
    if user is None or user.email != data.get("e"):
        raise LinkError("invalid")
    return user


def verify(user: User) -> Verified:
    """Mark ``user``'s address verified (idempotent: the first time counts)."""
    first = user.email_verified_at is None
    if first:
        user.email_verified_at = utcnow()
        db.session.commit()
    return Verified(user, first)


def note_login(user: User) -> None:
    """Record that ``user`` logged in through their verification (commits)."""
    user.last_login_at = utcnow()
    db.session.commit()


# -- a signup with an address already registered --------------------------------

def warn_existing_account(email: str) -> None:
    """Tell the owner of ``email`` someone tried to sign up with it (nothing is created)."""
    send_mail(email, "Someone tried to sign up with your address",
              f"Someone (maybe you) tried to create a Relay account with {email}, which already has one.\n\n"
              f"If it was you, log in: {_external('portal.auth.login')}\n"
              f"Forgot your password? Reset it: {_external('portal.email_links.forgot_password')}\n\n"
              "If it was not you, you can ignore this email: nothing was changed.\n")


# -- password reset -------------------------------------------------------------

def _password_digest(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:32]


def reset_token(user: User) -> str:
    return _serializer(RESET_SALT).dumps({"u": user.id, "p": _password_digest(user)})


def request_reset(raw_email: str, base_url: str) -> None:
    """Queue the reset email; the answer (and its timing) is the same whether or not the address has an account."""
    from saas import jobs

    jobs.enqueue("saas.onboarding.emails.send_reset", (raw_email or "")[:254], base_url)


def send_reset(raw_email: str, base_url: str) -> None:
    """A background job: email a reset link if an account has this address, else nothing."""
    with current_app.test_request_context("/", base_url=base_url):
        _send_reset(raw_email)


def _send_reset(raw_email: str) -> None:
    try:
        email = normalise_email(raw_email)
    except AccountError:
        return
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        return
    link = _external("portal.email_links.reset_password", token=reset_token(user))
    send_mail(user.email, "Reset your password",
              f"Someone asked to reset the password of {user.email}.\n\nChoose a new password here:\n\n{link}\n\n"
              "The link works for one hour, once. If you did not ask, ignore this email: "
              "your password stays as it is.\n")


def reset_user(token: str) -> User:
    """The user a reset link names while it is usable; raises LinkError."""
    data = _load(RESET_SALT, token, current_app.config["PASSWORD_RESET_MAX_AGE"])
    user = db.session.get(User, data.get("u")) if isinstance(data.get("u"), int) else None
    if user is None:
        raise LinkError("invalid")
    if data.get("p") != _password_digest(user):
        raise LinkError("used")
    return user


def reset_password(token: str, password: str) -> User:
    """Set a new password through a reset link (which then stops working). Raises LinkError, AccountError."""
    from saas.tenants import security

    user = reset_user(token)
    if len(password or "") < MIN_PASSWORD:
        raise AccountError("password", f"Password must be at least {MIN_PASSWORD} characters.")
    problem = security.password_problem(password, (user.email, user.email.split("@")[0]))
    if problem:
        raise AccountError("password", problem)
    user.password_hash = generate_password_hash(password)
    # Every session of the old password ends, copies of its cookies included.
    user.session_version = (user.session_version or 1) + 1
    now = utcnow()
    # The link came to this address: it is verified now, if it was not.
    if user.email_verified_at is None:
        user.email_verified_at = now
    user.last_login_at = now
    db.session.commit()
    return user
