"""Sessions that end, login and signup throttles, and password strength.

Sessions: the login session holds "user id:session version" (User.get_id);
bumping the version ends every session of the user at once, in every
browser, including copies of a cookie taken before (Flask's sessions are
signed cookies, so the server keeps no list of them: the version is what it
can revoke).

Throttles count in the app's rate-limit store (saas.rate_store: Redis with
REDIS_URL, else, or while Redis is unreachable, this process's memory)
through the ``limits`` library, because only failed logins count. Each setting is a
``limits`` string of tiers ("5/15 minutes;10/hour;20/day"): the more
failures, the longer the wait.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from flask import current_app
from limits import parse_many
from limits.strategies import MovingWindowRateLimiter
from werkzeug.security import check_password_hash, generate_password_hash

from saas.extensions import db
from saas.tenants.models import User

PASSWORD_RULE = "At least 8 characters, and not easy to guess: a few uncommon words make a good password."
# Used when zxcvbn cannot be imported: the passwords every guesser tries first.
COMMON_PASSWORDS = frozenset("""
password password1 password12 password123 passw0rd 12345678 123456789 1234567890 qwertyuiop qwerty123
11111111 00000000 12341234 87654321 iloveyou sunshine letmein welcome1 welcome123 football baseball
princess dragon123 monkey123 abc12345 abcd1234 trustno1 superman starwars whatever computer internet
administrator changeme secret123 qwerty12 1q2w3e4r 1qaz2wsx zaq12wsx aa123456 asdfghjkl
""".split())


# --- sessions ---------------------------------------------------------------------------------------------

def end_sessions(user: User) -> None:
    """End every login session of ``user`` (the current one too, unless it logs in again). Commits."""
    user.session_version = (user.session_version or 1) + 1
    db.session.commit()


# --- passwords --------------------------------------------------------------------------------------------

def password_problem(password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why ``password`` is too weak, in words for the form, or None.

    zxcvbn's estimate must reach PASSWORD_MIN_SCORE (0-4); its feedback is
    the message. Only the first 100 characters are estimated (the estimate's
    cost grows with the length; 100 characters are strong or not by then).
    """
    from saas.tenants.services import MIN_PASSWORD

    password = password or ""
    if len(password) < MIN_PASSWORD:
        return f"Password must be at least {MIN_PASSWORD} characters."
    try:
        from zxcvbn import zxcvbn
    except ImportError:  # pragma: no cover - zxcvbn is pinned in requirements.txt
        if password.lower() in COMMON_PASSWORDS:
            return "This is a commonly used password. Add another word or two; uncommon words are better."
        return None
    inputs = [part for part in user_inputs if part][:10]
    result = zxcvbn(password[:100], user_inputs=[value[:100] for value in inputs])
    if result["score"] >= current_app.config["PASSWORD_MIN_SCORE"]:
        return None
    feedback = result.get("feedback") or {}
    words = [feedback.get("warning") or "This password is easy to guess."]
    words += feedback.get("suggestions") or ["Add another word or two; uncommon words are better."]
    return " ".join(word.strip() for word in words if word)


class PasswordRefused(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def confirm_password(user: User, password: str, *, field: str, message: str) -> None:
    """Check ``user``'s password inside a session, counted like a login on the account's login throttle.

    Raises Throttled (before looking, the right password too) while the account's failed logins are used
    up, and PasswordRefused(field, message) when it is wrong, which counts as one more failed login: a
    stolen session gets no more guesses than the login form gives.
    """
    account = account_key(user.email)
    login_per_account.check(account)
    if not check_password_hash(user.password_hash, password or ""):
        login_per_account.hit(account)
        raise PasswordRefused(field, message)
    login_per_account.clear(account)


def change_password(user: User, current: str, new: str) -> None:
    """Replace ``user``'s password and end all its sessions. Raises Throttled, PasswordRefused. Commits."""
    confirm_password(user, current, field="current_password", message="That is not your current password.")
    problem = password_problem(new, (user.email, user.email.split("@")[0]))
    if problem:
        raise PasswordRefused("new_password", problem)
    if check_password_hash(user.password_hash, new):
        raise PasswordRefused("new_password", "The new password is the one you have now.")
    user.password_hash = generate_password_hash(new)
    end_sessions(user)


# --- throttles --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Throttled(Exception):
    """Too many attempts: try again after ``retry_after`` seconds."""

    retry_after: int


class Throttle:
    """Named tiers of limits counted per key (an address, an email's digest) in the limiter's storage."""

    def __init__(self, name: str, setting: str):
        self.name = name
        self.setting = setting

    def _parts(self, key: str):
        from saas.extensions import limiter

        limits_text = current_app.config[self.setting]
        items = parse_many(limits_text) if limits_text else []
        return MovingWindowRateLimiter(limiter.storage), items, f"throttle:{self.name}:{key}"

    def check(self, key: str) -> None:
        """Raise Throttled if ``key`` has used up any tier; counts nothing."""
        strategy, items, ident = self._parts(key)
        waits = []
        for item in items:
            if not strategy.test(item, ident):
                reset = strategy.get_window_stats(item, ident).reset_time
                waits.append(reset - time.time())
        if waits:
            raise Throttled(max(1, math.ceil(max(waits))))

    def hit(self, key: str) -> None:
        strategy, items, ident = self._parts(key)
        for item in items:
            strategy.hit(item, ident)

    def clear(self, key: str) -> None:
        strategy, items, ident = self._parts(key)
        for item in items:
            strategy.clear(item, ident)


login_per_account = Throttle("login-account", "LOGIN_ACCOUNT_LIMITS")
login_per_address = Throttle("login-address", "LOGIN_ADDRESS_LIMITS")
login_code_per_account = Throttle("login-code", "LOGIN_CODE_LIMITS")
signup_per_address = Throttle("signup-address", "SIGNUP_ADDRESS_LIMITS")


def code_key(user: User) -> str:
    """The code throttle's key: one count per user for the login's code step and every other code check."""
    return f"user-{user.id}"


def turn_off_two_factor(user: User, password: str, code: str) -> None:
    """Turn ``user``'s two-factor login off, given the password and a current or recovery code. Commits.

    Both are counted like the login's: the password on the account's login throttle, the code on the code
    throttle. Raises Throttled (nothing checked) while either is used up, PasswordRefused ("password" or
    "code") for a wrong one.
    """
    from saas.tenants import twofactor

    login_code_per_account.check(code_key(user))
    confirm_password(user, password, field="password", message="That is not your password.")
    if twofactor.verify(user, code) is None:
        login_code_per_account.hit(code_key(user))
        raise PasswordRefused("code", "That code is not right (or was already used).")
    twofactor.disable(user)


def account_key(email: str) -> str:
    """The throttle's key for what was typed as an email: the same for accounts that exist and those that don't."""
    return hashlib.sha256((email or "").strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
