"""The portal's login session: who is logged in (Flask-Login's loader), starting a fresh session, the half
login between the password and the code, where to go after logging in, and a throttle's words on a form.

Every page module may use these; none of them is a page, so no page module imports another.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, login_user

from saas.extensions import db
from saas.tenants import twofactor
from saas.tenants.login_attempts import Throttled
from saas.tenants.models import User
from saas.text import problem

# The session key naming the account this browser just signed up: verifying from here logs it in.
SIGNUP_USER = "signup_user_id"
# Who gave the right password and still owes the code, and since when.
HALF_LOGIN = "half_login"


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with nothing done for a request that brings no session cookie and
    leaves its session untouched (every API call: a Bearer key, no cookie): no signer built when it
    opens, no cookie settings read when it ends. A page that stores something still sets the cookie."""

    def open_session(self, app, request):
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


def init_login(manager: LoginManager) -> None:
    """Flask-Login's settings for the portal's login page and its user loader."""
    manager.login_view = "portal.auth.login"
    manager.login_message = "Log in to continue."
    manager.login_message_category = "info"
    manager.user_loader(load_user)


def load_user(user_id):
    """The session's user, if the session's version is still the user's (see saas.tenants.security)."""
    user_part, _, version = (user_id or "").partition(":")
    try:
        user = db.session.get(User, int(user_part))
        version = int(version)
    except (TypeError, ValueError):
        return None
    if user is None or user.session_version != version:
        return None
    return user


def start_session(user) -> None:
    """Log ``user`` in on a fresh session: nothing of the session before (nor its CSRF token) survives."""
    session.clear()
    g.pop("csrf_token", None)
    login_user(user)


def begin_half_login(user: User, next_url: str | None):
    """The password was right; the session holds only who is half logged in, and since when."""
    session.clear()
    session[HALF_LOGIN] = {"user": user.id, "version": user.session_version, "at": time.time(),
                           "next": safe_next(next_url)}
    return redirect(url_for("portal.twofactor.login_code"))


def half_logged_in() -> User | None:
    """The user who gave the right password within TWO_FACTOR_LOGIN_SECONDS and still owes the code, or None."""
    pending = session.get(HALF_LOGIN)
    if not isinstance(pending, dict):
        return None
    age = time.time() - float(pending.get("at") or 0)
    user = db.session.get(User, int(pending.get("user") or 0))
    if age > current_app.config["TWO_FACTOR_LOGIN_SECONDS"] or user is None \
            or user.session_version != pending.get("version") or not twofactor.enabled(user):
        session.pop(HALF_LOGIN, None)
        return None
    return user


def client_address() -> str:
    # With TRUSTED_PROXIES set, ProxyFix has already put the client's address here.
    return request.remote_addr or "unknown"


def safe_next(target: str | None) -> str | None:
    """A path on this site to go to after login, or None.

    Refused: other sites (``//host``, ``/\\host``, schemes), and control characters, which
    a Location header cannot carry (CR/LF would split it).
    """
    if not target or len(target) > 2000 or "\\" in target or problem(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def wait_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{-(-minutes // 60)} hours"


def throttled(exc: Throttled, what: str) -> str:
    """The form error for a throttled attempt; the response's Retry-After says the same wait."""
    g.retry_after = str(exc.retry_after)
    return f"Too many {what}. Try again in {wait_words(exc.retry_after)}."
