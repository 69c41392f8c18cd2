"""The headers every response carries: the Content-Security-Policy and the browser hardening beside it.

Core, like the factory that installs them: a face that needs a wider policy for some of its pages (the
portal's forms that end on Stripe's pages) builds it here with ``policy`` rather than editing the string.
"""
from __future__ import annotations

from flask import Flask

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)
# Two years, subdomains too: browsers never try plain HTTP again.
STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains"


def policy(form_action: list[str] | tuple[str, ...] = ()) -> str:
    """The Content-Security-Policy, with ``form_action``'s origins allowed as form targets beside our own."""
    if not form_action:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", "form-action 'self' " + " ".join(form_action))


def init_app(app: Flask) -> None:
    """Every response gets the headers it does not set itself; HSTS only where the HSTS setting is on."""

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if app.config.get("HSTS"):
            response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
        return response
