"""Stripe's events: verified, written to the ledger, applied once, in any order.

Each event is first recorded in the ``stripe_events`` ledger (primary key:
Stripe's ``evt_`` id), then one delivery claims it and applies it. A
processed event delivered again changes nothing. State older than what was
last applied changes nothing either (``apply_stripe_subscription`` compares
the event's ``created`` with ``last_event_at``); where an event does not say
which state came last, the subscription is read again from Stripe.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import stripe
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from saas.billing import notices
from saas.billing.models import StripeEvent
from saas.billing.stripe_events import handle
from saas.billing.stripe_fields import event_problem, storable_text
from saas.errors import ApiError, BillingNotConfigured, InvalidRequest
from saas.extensions import db
from saas.timeutil import from_timestamp, utcnow

log = logging.getLogger(__name__)

# How far a signature's time may be from ours, either way (Stripe's SDK checks only the past).
SIGNATURE_TOLERANCE = stripe.Webhook.DEFAULT_TOLERANCE
OUTCOME_LENGTH = 500
ERROR_LENGTH = 2000
# Far longer than an attempt can take (one Stripe call: 20 s timeout, two retries).
CLAIM_EXPIRES = timedelta(minutes=5)


class InvalidSignature(ApiError):
    status = 400
    code = "invalid_signature"
    message = "The Stripe-Signature header does not match this body and the webhook secret."


class EventInProgress(ApiError):
    """Another delivery of the same event holds it right now; a later retry finds it processed."""

    status = 409
    code = "event_in_progress"
    message = "Another delivery of this event is being processed; retry later."


class EventFailed(ApiError):
    """Applying the event failed; it stays in the ledger, unprocessed, for Stripe's retry."""

    status = 500
    code = "event_failed"
    message = "The event was recorded but could not be applied now; a retry will apply it."


@dataclass(frozen=True)
class Processed:
    """What receiving one event did."""

    event_id: str
    type: str
    tenant_id: int | None
    changed: bool
    outcome: str
    duplicate: bool = False  # already processed earlier: nothing was done now


# -- receiving -----------------------------------------------------------------------------------
def receive(body: bytes, signature: str | None, *, secret: str | None, client) -> Processed:
    """Verify a webhook delivery and process its event once (see ``process_event``).

    Raises BillingNotConfigured without a webhook secret (verification is
    never skipped), InvalidSignature for a bad, missing, stale or future
    signature, InvalidRequest for a body that is not an event or holds what our
    columns cannot; none of these writes anything.
    """
    if not secret:
        raise BillingNotConfigured("Stripe webhooks are not configured on this server (no STRIPE_WEBHOOK_SECRET).")
    return process_event(verified_event(body, signature, secret), client)


def verified_event(body: bytes, signature: str | None, secret: str) -> dict:
    """The event in ``body`` as a dict, once its signature is Stripe's and made within SIGNATURE_TOLERANCE.

    Raises InvalidSignature (no, a wrong, a stale or a future signature) or
    InvalidRequest (not an event, or one our columns cannot hold).
    """
    try:
        # The SDK checks the HMAC and that the signature is not older than the tolerance.
        stripe.Webhook.construct_event(body, signature, secret, tolerance=SIGNATURE_TOLERANCE)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(f"Invalid Stripe-Signature: {exc.user_message or exc}") from None
    except (ValueError, AttributeError, TypeError, RecursionError):
        # Not UTF-8, not JSON, JSON that is not an object, or nested past what the parser takes.
        raise InvalidRequest("The body is not a Stripe event.") from None
    if _signed_at(signature) > time.time() + SIGNATURE_TOLERANCE:
        # Signed "in the future": replayable for as long as it is ahead of our clock.
        raise InvalidSignature("Invalid Stripe-Signature: its timestamp is ahead of this server's clock.")
    return _event_of(json.loads(body))  # the event exactly as delivered, for the ledger


def _signed_at(signature: str) -> int:
    """The ``t`` of a Stripe-Signature header, read as the SDK reads it (its first ``t=``)."""
    pairs = [item.split("=", 2) for item in signature.split(",")]
    return int([pair[1] for pair in pairs if pair[0] == "t"][0])


def _event_of(payload) -> dict:
    problem = event_problem(payload)
    if problem:
        raise InvalidRequest(f"The body is not a Stripe event we can record: {problem}.")
    return payload


def process_event(event: dict, client) -> Processed:
    """Apply one Stripe event (a dict, already verified or read from the API) exactly once. Commits.

    The event is written to the ledger first; a repeat of a processed event
    does nothing and says ``duplicate``. Then this call claims the event, so
    that of two deliveries at once only one applies it: the other raises
    EventInProgress (409: Stripe retries, and then finds it processed). A
    handler error (Stripe failing on a re-read, the database) leaves the
    event unprocessed with its attempts and the error, and raises
    EventFailed; the next delivery applies it. Raises InvalidRequest, and
    writes nothing, for an event our columns cannot hold.
    """
    event_id = _event_of(event)["id"]
    if _record_and_claim(event):
        return _apply(event, client)
    row = _ledger_row(event_id)
    processed, tenant_id, outcome = row.processed_at is not None, row.tenant_id, row.outcome or ""
    db.session.rollback()
    if not processed:
        raise EventInProgress()
    return Processed(event_id, event["type"], tenant_id, False, outcome, duplicate=True)


def _record_and_claim(event: dict) -> bool:
    """Write the event to the ledger if it is not there, and take it for this delivery. Commits.

    Nothing is taken when the event is processed, or held by another
    delivery: one holds it from its claim until it is processed or its error
    is noted. ``received_at`` is when the holding delivery arrived, so an
    attempt that died without a word (a killed process) stops holding it
    after CLAIM_EXPIRES. On PostgreSQL a second delivery at once waits at
    the insert (or the update) for the first to commit, then finds the event
    held and takes nothing.
    """
    obj, now = event["data"]["object"], utcnow()
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(StripeEvent).values(
        id=event["id"], type=event["type"], created=from_timestamp(event["created"]),
        object_id=obj.get("id"), payload=event, received_at=now, attempts=0,
    ).on_conflict_do_nothing(index_elements=["id"]))
    result = db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event["id"], StripeEvent.processed_at.is_(None),
               or_(StripeEvent.attempts == 0, StripeEvent.error.is_not(None),
                   StripeEvent.received_at < now - CLAIM_EXPIRES))
        .values(attempts=StripeEvent.attempts + 1, error=None, received_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def _ledger_row(event_id: str) -> StripeEvent:
    return db.session.scalar(select(StripeEvent).where(StripeEvent.id == event_id)
                             .execution_options(populate_existing=True))


def _apply(event: dict, client) -> Processed:
    event_id, kind = event["id"], event["type"]
    try:
        handled = handle(event, client)
    except Exception as exc:
        # Whatever failed (Stripe, the database, a shape we did not expect), Stripe must retry:
        # keep the attempt and the error on the ledger and answer 500.
        db.session.rollback()
        log.warning("stripe event %s (%s) failed: %s: %s", event_id, kind, type(exc).__name__, exc)
        _note_failure(event_id, exc)
        raise EventFailed() from exc
    row = _ledger_row(event_id)
    row.processed_at = utcnow()
    row.outcome = storable_text(handled.outcome, OUTCOME_LENGTH)
    row.tenant_id = handled.tenant_id
    row.error = None
    db.session.commit()
    log.info("stripe event %s (%s): %s", event_id, kind, handled.outcome)
    notices.after_applied(event, handled.tenant_id)  # committed above, by this delivery only: once per event
    return Processed(event_id, kind, handled.tenant_id, handled.changed, handled.outcome)


def _note_failure(event_id: str, exc: Exception) -> None:
    db.session.execute(update(StripeEvent).where(StripeEvent.id == event_id)
                       .values(error=storable_text(f"{type(exc).__name__}: {exc}", ERROR_LENGTH))
                       .execution_options(synchronize_session=False))
    db.session.commit()


# -- what the portal asks -------------------------------------------------------------------------
INVOICE_NEWS = ("invoice.paid", "invoice.payment_action_required", "invoice.payment_failed")


def payment_action_needed(tenant) -> str | None:
    """The hosted invoice page where the tenant's bank asks them to confirm a payment, or None.

    A URL while the tenant's newest invoice event is
    ``invoice.payment_action_required``; an ``invoice.paid`` (or a newer
    failure, which the past-due notice covers) ends it. Of events in the same
    second, a payment counts as the newest: it settled the invoice.
    """
    rows = db.session.execute(
        select(StripeEvent.id, StripeEvent.type, StripeEvent.created)
        .where(StripeEvent.tenant_id == tenant.id, StripeEvent.type.in_(INVOICE_NEWS),
               StripeEvent.processed_at.is_not(None))
        .order_by(StripeEvent.created.desc()).limit(10)).all()
    if not rows:
        return None
    newest = [row for row in rows if row.created == rows[0].created]
    latest = min(newest, key=lambda row: INVOICE_NEWS.index(row.type))
    if latest.type != "invoice.payment_action_required":
        return None
    payload = db.session.scalar(select(StripeEvent.payload).where(StripeEvent.id == latest.id)) or {}
    return ((payload.get("data") or {}).get("object") or {}).get("hosted_invoice_url")
