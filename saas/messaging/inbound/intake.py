"""WhatsApp's webhook requests: the subscription handshake, and each notification verified and stored.

``receive`` checks ``X-Hub-Signature-256`` over the raw body with the app secret
and stores the body in one statement; the request is answered at once and the
notification applied after it (saas.messaging.inbound.notifications).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

from sqlalchemy import insert

from saas import jobs
from saas.database import single_statement
from saas.errors import ApiError
from saas.extensions import db
from saas.messaging.models import WhatsAppNotification
from saas.timeutil import utcnow

SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
# Applies a stored notification after the response (saas.messaging.inbound.notifications).
APPLY_JOB = "saas.messaging.inbound.notifications.apply_notification"


class WebhookNotConfigured(ApiError):
    status = 503
    code = "webhook_not_configured"
    message = "WhatsApp webhooks are not configured on this server."


class SignatureMismatch(ApiError):
    status = 403
    code = "invalid_signature"
    message = "The X-Hub-Signature-256 header is missing or does not match the body."


class VerificationRefused(ApiError):
    status = 403
    code = "verification_refused"
    message = "The verify token does not match."


def verify_subscription(mode: str | None, token: str | None, challenge: str | None, expected: str | None) -> str:
    """The challenge to echo for WhatsApp's subscription handshake.

    Raises WebhookNotConfigured without WHATSAPP_VERIFY_TOKEN, VerificationRefused
    for another mode or token.
    """
    if not expected:
        raise WebhookNotConfigured("WHATSAPP_VERIFY_TOKEN is not set on this server.")
    if mode != "subscribe" or token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise VerificationRefused()
    if not challenge or len(challenge) > 200:
        raise VerificationRefused("The challenge is missing or too long.")
    return challenge


def signature_matches(body: bytes, header: str | None, secret: str) -> bool:
    found = SIGNATURE.match(header or "")
    if found is None:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, found.group(1).lower())


_STORE = insert(WhatsAppNotification).returning(WhatsAppNotification.id)


def receive(body: bytes, signature: str | None, *, secret: str | None, now: datetime | None = None) -> int:
    """Verify a POSTed notification and store it; returns its id. Commits; the caller answers 200.

    Raises WebhookNotConfigured without an app secret (verification is never
    skipped) and SignatureMismatch for a missing or wrong signature: nothing
    is written then. Applying is queued for after the response.
    """
    if not secret:
        raise WebhookNotConfigured("WHATSAPP_APP_SECRET is not set on this server.")
    if not signature_matches(body, signature, secret):
        raise SignatureMismatch()
    # Signed by WhatsApp, so kept whatever it holds; PostgreSQL takes no NUL in text.
    stored = body.decode("utf-8", "replace").replace("\x00", "\ufffd")
    session = db.session
    try:
        conn = session.connection(execution_options=single_statement(session))
        notification_id = conn.execute(_STORE, {"body": stored, "received_at": now or utcnow(),
                                                "attempts": 0}).scalar()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    jobs.enqueue(APPLY_JOB, notification_id)
    return notification_id
