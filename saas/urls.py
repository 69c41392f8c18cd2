"""Absolute links of ours (upgrade_url, the key page's example, Stripe's return URLs), never from a forged Host.

The Host header is the client's to write: a link built from it can point at
any site ("Host: evil.example" made upgrade_url http://evil.example/billing).
PUBLIC_BASE_URL, required in production, is the base of every absolute link.
Without it (development), the request's host is used only when Flask's
TRUSTED_HOSTS admits it or it is this machine (localhost, 127.0.0.1, ::1).
"""
from __future__ import annotations

from functools import wraps

from flask import current_app, make_response, request, url_for

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
# Where links point when nothing trustworthy says where this app is: `make run`'s address.
FALLBACK_BASE = "http://localhost:5000"


def _host_name(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def request_host_trusted() -> bool:
    """Whether this request's Host may be written into links (development only)."""
    try:
        name = _host_name(request.host)
    except Exception:  # werkzeug's SecurityError for a host outside TRUSTED_HOSTS
        return False
    trusted = current_app.config.get("TRUSTED_HOSTS")
    if trusted:
        for entry in trusted:
            if name == entry or (entry.startswith(".") and (name.endswith(entry) or name == entry[1:])):
                return True
    return name in LOCAL_HOSTS


def public_base() -> str:
    """The base of our absolute links, without a trailing slash."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base.rstrip("/")
    if request and request_host_trusted():
        return request.host_url.rstrip("/")
    return FALLBACK_BASE


def public_url(endpoint: str, **values) -> str:
    """An absolute URL of ours for ``endpoint``."""
    return public_base() + url_for(endpoint, **values)


def no_store(view):
    """For a view whose page shows a secret (a new API key, a webhook secret, recovery codes...).

    ``Cache-Control: no-store``: neither the browser's cache nor a proxy keeps
    the page, so Back or a shared machine does not show the secret again.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        mark_no_store(response)
        return response

    return wrapper


def mark_no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
