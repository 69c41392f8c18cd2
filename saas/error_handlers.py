"""How errors are answered: the JSON envelope, Graph's error shape, and HTML error pages.

Services raise ``ApiError`` subclasses (saas.errors). Under ``/api/`` they
become the envelope ``{"error": {"code", "message", "details", "upgrade_url"}}``;
on the Cloud-API-compatible send endpoint (``/v{N}/...``) they take Graph's
error shape so WhatsApp client libraries parse them unchanged. HTML pages keep
HTML error pages.
"""
from __future__ import annotations

import logging
import re

from flask import g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.wrappers import Response

from saas.errors import (
    ApiError, InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, RateLimited, Unauthenticated,
)

log = logging.getLogger(__name__)

# Graph's paths: versioned (/v23.0/...) or not (/{object id}/..., as whatsapp-api-js calls /{phone id}/calls).
GRAPH_PATH = re.compile(r"^/(?:v\d+(?:\.\d+)?/|[0-9]+(?:/|$))")


def upgrade_url() -> str:
    from saas.urls import public_url

    return public_url("portal.billing.index")


def api_envelope(error: ApiError):
    body = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    if error.upgrade:
        body["upgrade_url"] = upgrade_url()
    return body


def graph_envelope(error: ApiError):
    body = {
        "message": getattr(error, "graph_message", None) or f"(#{error.graph_code}) {error.graph_title or error.message}",
        "type": error.graph_type,
        "code": error.graph_code,
        "error_data": {"messaging_product": "whatsapp", "details": error.graph_details or error.message},
        "fbtrace_id": getattr(error, "fbtrace_id", None) or g.get("request_id", ""),
        "reason": error.code,
    }
    if error.graph_subcode is not None:
        body["error_subcode"] = error.graph_subcode
    if error.details is not None:
        body["details"] = error.details
    if error.upgrade:
        body["upgrade_url"] = upgrade_url()
    return body


def render_api_error(error: ApiError):
    if GRAPH_PATH.match(request.path):
        payload = {"error": graph_envelope(error)}
    else:
        payload = {"error": api_envelope(error)}
    response = jsonify(payload)
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    if "Retry-After" in error.headers:
        g.retry_after = error.headers["Retry-After"]
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def wants_json() -> bool:
    path = request.path
    return path.startswith("/api/") or path.startswith("/webhooks/") or bool(GRAPH_PATH.match(path))


HTTP_TO_API = {
    400: InvalidRequest,
    401: Unauthenticated,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    429: RateLimited,
}


def handle_http_exception(exc: HTTPException):
    if wants_json():
        cls = HTTP_TO_API.get(exc.code)
        if cls is None:
            error = ApiError(exc.description)
            error.status = exc.code or 500
            error.code = (exc.name or "error").lower().replace(" ", "_")
        elif exc.code in (404, 405) and GRAPH_PATH.match(request.path):
            # A Graph call this server does not serve, in Graph's words for one, so a client's error says which.
            error = cls(f"Unsupported {request.method.lower()} request: {request.method} "
                        f"{request.path[:120]} is not a call this server serves.")
        else:
            error = cls(None if cls is not InvalidRequest else "The request is invalid.")
        return render_api_error(error)
    if isinstance(exc, SecurityError):
        # A Host outside TRUSTED_HOSTS: Flask could not bind the URL map to it, so no page with links renders.
        return Response("400 Bad Request: this server does not answer for that host name.\n", 400,
                        mimetype="text/plain")
    return render_template("errors/error.html", error=exc), exc.code


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    from saas.database import dropped, unreachable_answer

    if dropped(exc):  # the database went away under a step nobody retries: 503, not 500
        return unreachable_answer(exc)
    log.exception("unhandled error")
    from saas.extensions import db

    # The page about the error must not trip over the transaction that failed.
    db.session.rollback()
    if wants_json():
        error = ApiError("Something went wrong on our side; the request id identifies it.")
        error.status = 500
        error.code = "internal_error"
        error.graph_code = 1
        return render_api_error(error)
    return render_template("errors/error.html", error=None), 500


def init_app(app):
    app.register_error_handler(ApiError, render_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
