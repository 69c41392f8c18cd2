"""Login attempts, counted: every proof of who one is goes through ``attempt``.

The login's password, its code step, a password typed again inside a session
and the code that turns two-factor off are each one attempt: refused with
Throttled before anything is looked at while a counter is used up (so the
right answer is refused too), counted as one more failure on every counter
when wrong, and, when right, clearing the counters a success clears. Views
call the functions here and show what they raise; they count nothing.

Counters live in the app's rate-limit store (saas.rate_store: Redis with
REDIS_URL, else, or while Redis is unreachable, this process's memory)
through the ``limits`` library, because only failures count. Each setting is
a ``limits`` string of tiers ("5/15 minutes;10/hour;20/day"): the more
failures, the longer the wait.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from flask import current_app
from limits import parse_many
from limits.strategies import MovingWindowRateLimiter
from werkzeug.security import check_password_hash

from saas.tenants.models import User

T = TypeVar("T")


@dataclass(frozen=True)
class Throttled(Exception):
    """Too many attempts: try again after ``retry_after`` seconds."""

    retry_after: int


class Refused(ValueError):
    """A wrong password or code (already counted); ``field`` names the form field it belongs to, if any."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


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

# A throttle and the key it counts under for one attempt.
Counter = tuple[Throttle, str]


def account_key(email: str) -> str:
    """The throttle's key for what was typed as an email: the same for accounts that exist and those that don't."""
    return hashlib.sha256((email or "").strip().lower().encode("utf-8", "replace")).hexdigest()[:32]


def code_key(user: User) -> str:
    """The code throttle's key: one count per user for the login's code step and every other code check."""
    return f"user-{user.id}"


def attempt(counters: Iterable[Counter], proof: Callable[[], T], *, cleared: Iterable[Counter] = ()) -> T:
    """Run ``proof`` as one counted attempt and return what it returns.

    Raises Throttled, without running ``proof``, while any of ``counters`` is used up. A falsy result (a
    wrong password or code) is one more failure on each of ``counters`` and is returned as it is; a truthy
    one clears ``cleared``.
    """
    counters = list(counters)
    for throttle, key in counters:
        throttle.check(key)
    result = proof()
    if not result:
        for throttle, key in counters:
            throttle.hit(key)
        return result
    for throttle, key in cleared:
        throttle.clear(key)
    return result


def log_in(email: str, password: str, *, address: str) -> User:
    """The user with this email and password: the login's password step, counted per address and per account.

    Raises Throttled (the right password too) while either is used up, Refused when the pair is wrong,
    which counts on both; an unknown email counts exactly like a known one. A success clears the account's
    count, not the address's.
    """
    from saas.tenants.services import authenticate

    account = (login_per_account, account_key(email))
    user = attempt([(login_per_address, address), account], lambda: authenticate(email, password),
                   cleared=[account])
    if user is None:
        raise Refused(None, "Invalid email or password.")
    return user


def enter_code(user: User, code: str, *, address: str) -> str:
    """The login's code step for ``user``, who gave the right password: "totp" or "recovery" (now spent).

    Counted per address (with the password step's failures) and per user on the code throttle. Raises
    Throttled while either is used up, Refused("code") for a wrong or already used code.
    """
    from saas.tenants import twofactor

    used = attempt([(login_per_address, address), (login_code_per_account, code_key(user))],
                   lambda: twofactor.verify(user, code))
    if used is None:
        raise Refused("code", "That code is not right (or was already used).")
    return used


def count_signup(address: str) -> None:
    """One more signup from ``address``; raises Throttled (and counts nothing) while its signups are used up."""
    signup_per_address.check(address)
    signup_per_address.hit(address)


def confirm_password(user: User, password: str, *, field: str, message: str) -> None:
    """Check ``user``'s password inside a session, counted like a login on the account's login throttle.

    Raises Throttled (before looking, the right password too) while the account's failed logins are used
    up, and Refused(field, message) when it is wrong, which counts as one more failed login: a stolen
    session gets no more guesses than the login form gives.
    """
    account = (login_per_account, account_key(user.email))
    if not attempt([account], lambda: check_password_hash(user.password_hash, password or ""), cleared=[account]):
        raise Refused(field, message)


def confirm_code(user: User, code: str) -> str:
    """Check a code from ``user``, who is logged in, counted on the code throttle like the login's code step:
    "totp" or "recovery" (now spent). Raises Throttled, Refused("code")."""
    from saas.tenants import twofactor

    used = attempt([(login_code_per_account, code_key(user))], lambda: twofactor.verify(user, code))
    if used is None:
        raise Refused("code", "That code is not right (or was already used).")
    return used
