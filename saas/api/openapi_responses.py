"""The OpenAPI document's responses: what each error status means, and the shapes of a JSON answer."""
from __future__ import annotations

ERRORS = {
    400: "The request is invalid (body, query, header or a WhatsApp rule); `details` says which field.",
    401: "Missing, malformed, unknown or revoked API key.",
    402: "The plan's quota is used up, or the subscription needs a payment.",
    403: "The plan does not include this, the account is suspended, or a marketing template lacks the contact's "
         "opt-in (consent_required) or follows its opt-out (opted_out).",
    404: "No such resource for this account.",
    405: "Method not allowed.",
    409: "This Idempotency-Key was used with another request.",
    413: "The body is larger than MAX_REQUEST_BYTES.",
    429: "Too many requests (the plan's rate, or WhatsApp's pair rate or messaging limit); see Retry-After.",
    502: "WhatsApp failed or refused the message.",
    504: "WhatsApp did not answer in time.",
}
READ_ERRORS = (400, 401, 403, 404, 405, 413, 429)
SEND_ERRORS = tuple(code for code in ERRORS if code != 504)
GRAPH_ERRORS = (400, 401, 403, 404, 405, 413, 429, 502, 504)
UPLOAD_ERRORS = (400, 401, 402, 403, 404, 405, 413, 429, 502, 504)


def errors(codes, schema="Error", descriptions: dict | None = None):
    """The error answers ``codes`` (the envelope, or ``schema``); ``descriptions`` ({409: "..."}) replace ERRORS'."""
    descriptions = descriptions or {}
    return {str(code): {"description": descriptions.get(code, ERRORS[code]),
                        "content": {"application/json": {"schema": schema}}} for code in codes}


def ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}
