"""The API error hierarchy, the JSON envelope, and the handlers that render it.

Services raise ``ApiError`` subclasses. Under ``/api/`` they become the
envelope ``{"error": {"code", "message", "details", "upgrade_url"}}``; on the
Cloud-API-compatible send endpoint (``/v{N}/...``) they take Graph's error
shape so WhatsApp client libraries parse them unchanged. HTML pages keep HTML
error pages.
"""
from __future__ import annotations

import logging
import re

from flask import g, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

GRAPH_PATH = re.compile(r"^/v\d+(\.\d+)?/")


class ApiError(Exception):
    status = 400
    code = "invalid_request"
    # Integer code on the Graph-shaped endpoint. Meta's own where the meaning
    # is Meta's (100 invalid parameter, 190 bad token); ours otherwise.
    graph_code = 100
    graph_type = "OAuthException"
    graph_subcode: int | None = None
    message = "The request is invalid."

    def __init__(self, message: str | None = None, *, details=None, upgrade=False,
                 headers: dict | None = None, graph_code: int | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.upgrade = upgrade
        self.headers = headers or {}
        if graph_code is not None:
            self.graph_code = graph_code


class InvalidRequest(ApiError):
    pass


class Unauthenticated(ApiError):
    status = 401
    code = "unauthenticated"
    graph_code = 190
    message = "Invalid or missing API key. Send 'Authorization: Bearer <key>'."


class PaymentRequired(ApiError):
    status = 402
    code = "payment_required"
    graph_code = 4021
    message = "Your subscription needs a payment before this can be done."


class QuotaExceeded(ApiError):
    status = 402
    code = "quota_exceeded"
    graph_code = 4020
    message = "Your plan's conversation quota for this period is used up."


class FeatureNotInPlan(ApiError):
    status = 403
    code = "feature_not_in_plan"
    graph_code = 4030
    message = "Your plan does not include this feature."


class TenantSuspended(ApiError):
    status = 403
    code = "tenant_suspended"
    graph_code = 4031
    message = "This account is suspended."


class NotFound(ApiError):
    status = 404
    code = "not_found"
    graph_code = 100
    graph_subcode = 33
    message = "Not found."


class IdempotencyConflict(ApiError):
    status = 409
    code = "idempotency_conflict"
    graph_code = 4090
    message = "This Idempotency-Key was used with a different request."


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    graph_code = 4130
    message = "The request body is too large."


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    graph_code = 130429
    message = "Too many requests."


class UpstreamError(ApiError):
    """WhatsApp refused or failed; ``graph_code`` carries WhatsApp's own code."""

    status = 502
    code = "upstream_error"
    graph_code = 131000
    message = "WhatsApp could not process the message."


class BillingNotConfigured(ApiError):
    status = 503
    code = "billing_not_configured"
    graph_code = 5030
    message = "Online payment is not configured on this server."


class BillingUnavailable(ApiError):
    """Stripe failed or could not be reached; nothing was changed."""

    status = 502
    code = "billing_unavailable"
    graph_code = 5020
    message = "The payment provider could not be reached. Nothing was changed; try again in a minute."


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    graph_code = 100
    message = "This method is not allowed here."


def upgrade_url() -> str:
    from flask import current_app

    base = current_app.config.get("PUBLIC_BASE_URL")
    path = url_for("portal.billing")
    if base:
        return base.rstrip("/") + path
    return url_for("portal.billing", _external=True)


def api_envelope(error: ApiError):
    body = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    if error.upgrade:
        body["upgrade_url"] = upgrade_url()
    return body


def graph_envelope(error: ApiError):
    body = {
        "message": f"(#{error.graph_code}) {error.message}",
        "type": error.graph_type,
        "code": error.graph_code,
        "error_data": {"messaging_product": "whatsapp", "details": error.message},
        "fbtrace_id": g.get("request_id", ""),
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
        else:
            error = cls(None if cls is not InvalidRequest else "The request is invalid.")
        return render_api_error(error)
    return render_template("errors/error.html", error=exc), exc.code


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
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
