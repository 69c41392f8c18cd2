"""The API error hierarchy: what services raise when a request cannot be served.

Each ``ApiError`` subclass carries its HTTP status, its code in our envelope
and its integer code on the Cloud-API-compatible endpoint (Graph's shape);
saas.error_handlers renders them.
"""
from __future__ import annotations

import re


class ApiError(Exception):
    status = 400
    code = "invalid_request"
    # Integer code on the Graph-shaped endpoint. Meta's own where the meaning
    # is Meta's (100 invalid parameter, 190 bad token); ours otherwise.
    graph_code = 100
    graph_type = "OAuthException"
    graph_subcode: int | None = None
    # Where we refuse as WhatsApp would, Meta's own title (in "message") and details for that code.
    graph_title: str | None = None
    graph_details: str | None = None
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
    message = "Your plan's quota for this period is used up."


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


class EmailNotVerified(ApiError):
    status = 403
    code = "email_not_verified"
    graph_code = 4032
    message = ("The account owner's email address is not verified yet: live numbers send once it is "
               "(open the link we emailed, or resend it from the portal). The sandbox number works meanwhile.")


class ConsentRequired(ApiError):
    """A marketing template to a contact with no opt-in recorded for the sending number."""

    status = 403
    code = "consent_required"
    graph_code = 4033
    message = ("This contact has no opt-in recorded for marketing messages from this number. Record the opt-in "
               "first (POST /api/v1/contacts/{id}/consent with state opted_in and its proof, a CSV import with "
               "opt-in, or the contact's page in the portal), or send a utility template.")


class OptedOut(ApiError):
    """A marketing template to a contact who opted out of marketing from the sending number."""

    status = 403
    code = "opted_out"
    graph_code = 4034
    message = ("This contact opted out of marketing messages from this number, so marketing templates are not "
               "sent to them. Only a new opt-in from the contact (a START keyword, Meta's resume, or an opt-in "
               "you record with its proof) lifts it.")


class LiveNumberRequired(ApiError):
    """What only WhatsApp can do (media, a business profile's changes) asked of a sandbox number."""

    status = 400
    code = "live_number_required"
    graph_code = 4001
    message = "This needs a connected live number; sandbox numbers never reach WhatsApp."


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
    """WhatsApp refused or failed; ``graph_code`` carries WhatsApp's own code.

    Built from Graph's own error answer (``from_graph``) it keeps what Meta
    said: the code, ``error_subcode``, ``error_data.details``, the type and
    ``fbtrace_id``, and Meta's HTTP status where it is the client's to act on
    (4xx); a failure of Meta's own (5xx, no answer) is a 502, a timeout a 504.
    """

    status = 502
    code = "upstream_error"
    graph_code = 131000
    message = "WhatsApp could not process the message."
    fbtrace_id: str | None = None
    # Meta's own "message", shown on the Graph-shaped endpoint exactly as Meta wrote it.
    graph_message: str | None = None

    @classmethod
    def from_graph(cls, http_status: int | None, error: dict | None, *, retry_after: str | None = None,
                   details: dict | None = None) -> "UpstreamError":
        """The tenant's view of Graph's ``{"error": {...}}`` answer (``error`` is the inner object)."""
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        title = _graph_text(error.get("error_user_title") or error.get("message"), 300) or cls.message
        exc = cls(title, details={"whatsapp_code": code, **(details or {})},
                  headers={"Retry-After": retry_after} if retry_after and http_status == 429 else None,
                  graph_code=code if code is not None else 131000)
        exc.graph_title = _strip_code_prefix(title)
        exc.graph_details = _graph_text(data.get("details"), 500)
        subcode = error.get("error_subcode")
        exc.graph_subcode = subcode if isinstance(subcode, int) else None
        exc.graph_type = _graph_text(error.get("type"), 60) or cls.graph_type
        exc.fbtrace_id = _graph_text(error.get("fbtrace_id"), 64)
        exc.graph_message = _graph_text(error.get("message"), 500)
        if exc.graph_subcode is not None:
            exc.details["error_subcode"] = exc.graph_subcode
        if exc.graph_details:
            exc.details["error_details"] = exc.graph_details
        if exc.fbtrace_id:
            exc.details["fbtrace_id"] = exc.fbtrace_id
        if http_status is not None and 400 <= http_status < 500:
            exc.status = http_status
        return exc


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    message = "WhatsApp did not answer in time."


def _graph_text(value, limit: int) -> str | None:
    """Text from an upstream answer made safe to show and store: a string, no NUL, bounded."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).replace("\x00", "").strip()
    return text[:limit] or None


def _strip_code_prefix(title: str) -> str:
    # Meta's messages often start "(#131026) ..."; the envelope adds the code itself.
    match = re.match(r"^\(#\d+\)\s*", title)
    return title[match.end():] if match else title


class WhatsAppRule(ApiError):
    """A send WhatsApp would refuse, refused before it leaves (nothing sent, nothing billed).

    On the Cloud-API-compatible endpoint it reads exactly like Meta's refusal
    (Meta's code, title and details); under /api/v1 it has a code of ours and
    the WhatsApp code in ``details``.
    """

    def __init__(self, message: str | None = None, *, details=None, **kwargs):
        details = {"whatsapp_code": self.graph_code, **(details or {})}
        super().__init__(message, details=details, **kwargs)


class OutsideCustomerServiceWindow(WhatsAppRule):
    status = 400
    code = "outside_customer_service_window"
    graph_code = 131047
    graph_title = "Re-engagement message"
    graph_details = "More than 24 hours have passed since the recipient last replied to the sender number."
    message = ("More than 24 hours have passed since this contact last wrote to this number, so only a "
               "template message can reach them.")


class PairRateLimited(WhatsAppRule):
    status = 429
    code = "pair_rate_limited"
    graph_code = 131056
    graph_title = "(Business Account, Consumer Account) pair rate limit hit"
    graph_details = ("Too many messages sent from the sender phone number to the same recipient phone number "
                     "in a short period of time.")
    message = "Too many messages to this contact in a short time; wait and retry (other contacts are unaffected)."


class MessagingLimitReached(WhatsAppRule):
    # Meta documents no code of its own for the portfolio messaging limit; 131048 is its
    # documented refusal for "restrictions on how many messages can be sent from this phone number".
    status = 429
    code = "messaging_limit_reached"
    graph_code = 131048
    graph_title = "Spam rate limit hit"
    graph_details = ("Message failed to send because there are restrictions on how many messages can be sent "
                     "from this phone number.")
    message = ("This number has reached its messaging limit: the unique users it may reach with "
               "business-initiated messages in a moving 24 hours.")


class TemplateNotFound(WhatsAppRule):
    status = 404
    code = "template_not_found"
    graph_code = 132001
    graph_title = "Template name does not exist in the translation"
    graph_details = "The template does not exist in the specified language or the template has not been approved."
    message = "No template with this name exists in this language for this number's WhatsApp Business Account."


class TemplateNotApproved(TemplateNotFound):
    status = 400
    code = "template_not_approved"
    message = "This template is not approved by WhatsApp, so it cannot be sent yet."


class TemplatePaused(WhatsAppRule):
    status = 400
    code = "template_paused"
    graph_code = 132015
    graph_title = "Template is Paused"
    graph_details = "Template is paused due to low quality so it cannot be sent in a template message."
    message = "WhatsApp paused this template for low quality; edit it and send it again once it is approved."


class TemplateDisabled(WhatsAppRule):
    status = 400
    code = "template_disabled"
    graph_code = 132016
    graph_title = "Template is Disabled"
    graph_details = ("Template has been paused too many times due to low quality and is now permanently "
                     "disabled.")
    message = "WhatsApp disabled this template for good; create a new template with different content."


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
