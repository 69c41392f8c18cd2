"""Two-factor login with TOTP (RFC 6238, any authenticator app) and one-time recovery codes.

The secret is kept encrypted with TOKEN_ENCRYPTION_KEY (like live numbers' tokens). A code is
accepted for the current 30-second step or the one either side (clock drift), and never twice:
the last accepted step is remembered. Recovery codes are shown once and kept as sha256 digests
(they are random, 50 bits each: a plain digest is enough, as for API keys).
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime, timezone

import pyotp
from cryptography.fernet import InvalidToken
from sqlalchemy import delete, select, update

from saas.extensions import db
from saas.tenants.models import RecoveryCode, User
from saas.timeutil import utcnow

ISSUER = "Relay"
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def _encrypt(secret: str) -> str:
    from saas.crypto import token_cipher

    return token_cipher().encrypt(secret.encode()).decode()


def _decrypt(stored: str) -> str:
    from saas.crypto import token_cipher

    return token_cipher().decrypt(stored.encode()).decode()


def enabled(user: User) -> bool:
    return user.totp_enabled_at is not None and user.totp_secret is not None


def _digits(code: str) -> str | None:
    code = re.sub(r"[\s-]", "", code or "")
    return code if re.fullmatch(r"\d{6}", code) else None


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (of now and the ones either side) whose code is ``code``, or None."""
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    step = totp.timecode(datetime.fromtimestamp(now, tz=timezone.utc))
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def confirm_code(secret: str, code: str) -> bool:
    """Whether ``code`` is right for a secret being enrolled."""
    digits = _digits(code)
    return digits is not None and _matching_step(secret, digits) is not None


def _hash(code: str) -> str:
    return hashlib.sha256(re.sub(r"[\s-]", "", code or "").lower().encode("utf-8", "replace")).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def enable(user: User, secret: str) -> list[str]:
    """Turn two-factor on with a confirmed ``secret``; returns the recovery codes (shown once). Commits."""
    user.totp_secret = _encrypt(secret)
    user.totp_enabled_at = utcnow()
    user.totp_last_step = None
    return _replace_recovery_codes(user)


def _replace_recovery_codes(user: User) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash(code)) for code in codes)
    db.session.commit()
    return codes


def disable(user: User) -> None:
    """Turn two-factor off and forget the secret and recovery codes. Commits."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.commit()


def verify(user: User, code: str) -> str | None:
    """Check a login code: "totp" or "recovery" when accepted (and spent), None when not. Commits.

    A TOTP code whose step is not later than the last accepted one is refused (no replay); a
    recovery code is marked used in the same statement that checks it is unused, so two
    requests racing with one code cannot both win.
    """
    if not enabled(user):
        return None
    code = (code or "")[:64]
    digits = _digits(code)
    if digits is not None:
        try:
            secret = _decrypt(user.totp_secret)
        except InvalidToken:  # encrypted with a key no longer in TOKEN_ENCRYPTION_KEY: recovery codes still work
            return None
        step = _matching_step(secret, digits)
        if step is None:
            return None
        spent = db.session.execute(
            update(User).where(User.id == user.id)
            .where(User.totp_last_step.is_(None) | (User.totp_last_step < step))
            .values(totp_last_step=step)).rowcount
        db.session.commit()
        return "totp" if spent == 1 else None
    spent = db.session.execute(
        update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _hash(code),
                                   RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())).rowcount
    db.session.commit()
    return "recovery" if spent == 1 else None


def recovery_codes_left(user: User) -> int:
    return len(db.session.scalars(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id,
                                                               RecoveryCode.used_at.is_(None))).all())
