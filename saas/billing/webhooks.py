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
from dataclasses import dataclass
from datetime import datetime, timedelta

import stripe
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from saas.audit import services as audit
from saas.billing import notices
from saas.billing.models import StripeEvent, Subscription
from saas.billing.services import (ENDED, Applied, UnknownCustomer, apply_stripe_subscription, subscription_for,
                                   tenant_for_stripe)
from saas.errors import ApiError, BillingNotConfigured, InvalidRequest
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp, utcnow

log = logging.getLogger(__name__)

UNKNOWN_CUSTOMER = "unknown customer"
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
class Handled:
    tenant_id: int | None
    changed: bool
    outcome: str


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
    never skipped), InvalidSignature for a bad, missing or stale signature,
    InvalidRequest for a body that is not an event; none of these writes
    anything.
    """
    if not secret:
        raise BillingNotConfigured("Stripe webhooks are not configured on this server (no STRIPE_WEBHOOK_SECRET).")
    return process_event(verified_event(body, signature, secret), client)


def verified_event(body: bytes, signature: str | None, secret: str) -> dict:
    """The event in ``body`` as a dict, once its signature is Stripe's (tolerance: 300 s)."""
    try:
        stripe.Webhook.construct_event(body, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(f"Invalid Stripe-Signature: {exc.user_message or exc}") from None
    except (ValueError, AttributeError, TypeError):
        # Not UTF-8, not JSON, or JSON that is not an object.
        raise InvalidRequest("The body is not a Stripe event.") from None
    payload = json.loads(body)  # the event exactly as delivered, for the ledger
    data = payload.get("data")
    if not (payload.get("object") == "event" and isinstance(payload.get("id"), str)
            and 0 < len(payload["id"]) <= 255 and isinstance(payload.get("type"), str)
            and isinstance(payload.get("created"), int) and isinstance(data, dict)
            and isinstance(data.get("object"), dict)):
        raise InvalidRequest("The body is not a Stripe event.")
    return payload


def process_event(event: dict, client) -> Processed:
    """Apply one Stripe event (a dict, already verified or read from the API) exactly once. Commits.

    The event is written to the ledger first; a repeat of a processed event
    does nothing and says ``duplicate``. Then this call claims the event, so
    that of two deliveries at once only one applies it: the other raises
    EventInProgress (409: Stripe retries, and then finds it processed). A
    handler error (Stripe failing on a re-read, the database) leaves the
    event unprocessed with its attempts and the error, and raises
    EventFailed; the next delivery applies it.
    """
    event_id = event["id"]
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
        id=event["id"], type=event["type"][:100], created=from_timestamp(event["created"]),
        object_id=str(obj["id"])[:255] if obj.get("id") else None, payload=event, received_at=now, attempts=0,
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
        handled = _handle(event, client)
    except Exception as exc:
        # Whatever failed (Stripe, the database, a shape we did not expect), Stripe must retry:
        # keep the attempt and the error on the ledger and answer 500.
        db.session.rollback()
        log.warning("stripe event %s (%s) failed: %s: %s", event_id, kind, type(exc).__name__, exc)
        _note_failure(event_id, exc)
        raise EventFailed() from exc
    row = _ledger_row(event_id)
    row.processed_at = utcnow()
    row.outcome = handled.outcome[:OUTCOME_LENGTH]
    row.tenant_id = handled.tenant_id
    row.error = None
    db.session.commit()
    log.info("stripe event %s (%s): %s", event_id, kind, handled.outcome)
    notices.after_applied(event, handled.tenant_id)  # committed above, by this delivery only: once per event
    return Processed(event_id, kind, handled.tenant_id, handled.changed, handled.outcome)


def _note_failure(event_id: str, exc: Exception) -> None:
    db.session.execute(update(StripeEvent).where(StripeEvent.id == event_id)
                       .values(error=f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH])
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _handle(event: dict, client) -> Handled:
    obj = event["data"]["object"]
    handler = HANDLERS.get(event["type"])
    if handler is None:
        customer = _id_of(obj.get("customer"))
        tenant = tenant_for_stripe(customer) if customer else None
        return Handled(tenant.id if tenant else None, False, "not handled; recorded")
    try:
        return handler(event, obj, client)
    except UnknownCustomer:
        # Answered 200: Stripe retrying cannot make the customer ours. If it is ours after all (a
        # customer linked by hand, say), `flask billing resync` re-reads its subscription.
        db.session.rollback()
        return Handled(None, False, UNKNOWN_CUSTOMER)


# -- handlers --------------------------------------------------------------------------------------
def _id_of(value) -> str | None:
    """A Stripe reference: an id, or the expanded object carrying it."""
    if value is None or isinstance(value, str):
        return value
    return value.get("id")


def _created(event: dict) -> datetime:
    return from_timestamp(event["created"])


def _locked_subscription(tenant_id: int) -> Subscription | None:
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id)
                             .with_for_update().execution_options(populate_existing=True))


def _apply_current(client, subscription_id: str, as_of: datetime, actor: str = "stripe") -> Applied:
    """Read the subscription from Stripe now and apply it as of ``as_of`` (the event's ``created``).

    Why the event's time and not now: what is read is at least as new as the
    event, so it may go wherever the event's own state could (``created`` not
    older than ``last_event_at``; apply_stripe_subscription checks under the
    row lock), and where that was older it is dropped, since a newer event is
    applied already. Stamped "now", a read made just before a newer event was
    applied would overwrite it when applied just after, and our clock (not
    Stripe's) would decide which later events count as older.
    """
    obj = client.v1.subscriptions.retrieve(subscription_id).to_dict(for_json=True)
    return apply_stripe_subscription(obj, as_of=as_of, actor=actor)


def subscription_changed(event: dict, obj: dict, client) -> Handled:
    """customer.subscription.created|updated|deleted|trial_will_end|paused|resumed: the object is the state."""
    kind, created = event["type"], _created(event)
    if kind == "customer.subscription.deleted" and obj.get("status") not in ENDED:
        obj = {**obj, "status": "canceled"}  # deleted means over, whatever else it says
    tenant = tenant_for_stripe(_id_of(obj.get("customer")), obj.get("metadata"), obj["id"])
    if tenant is None:
        raise UnknownCustomer(f"No tenant for Stripe customer {obj.get('customer')}.")
    tenant_id = tenant.id
    held = _locked_subscription(tenant_id)
    if held is not None and held.last_event_at == created:
        # Two events of the same second: which state came last is unknowable, so ask Stripe for
        # the state now. No lock (nor, on SQLite, the write lock) is held through the call.
        db.session.rollback()
        applied = _apply_current(client, obj["id"], created)
    else:
        # The row lock is held from the check to the apply: no other event can slip in between.
        applied = apply_stripe_subscription(obj, as_of=created)
    outcome = applied.outcome
    previous = (event["data"].get("previous_attributes") or {}).get("status")
    if obj.get("status") == "past_due" and previous not in (None, "past_due"):
        _pin_past_due_start(tenant_id, obj["id"], created)
    if kind == "customer.subscription.trial_will_end":
        ends = f"on {from_timestamp(obj['trial_end']):%Y-%m-%d}" if obj.get("trial_end") else "soon"
        audit.record("stripe", "subscription.trial_ending", f"Trial ends {ends}", tenant_id=tenant_id,
                     stripe_subscription=obj["id"])
        outcome = f"trial ends {ends}; {outcome}"
    return Handled(tenant_id, applied.changed, outcome)


def _pin_past_due_start(tenant_id: int, subscription_id: str, created: datetime) -> None:
    """This event records the change to past_due: the grace period starts at its time.

    Otherwise it starts when past_due was first applied, and a subscription
    re-read for an older event (delivered late) would start it too early.
    Only while this event's state is the one applied (flushed; commits with the ledger).
    """
    row = _locked_subscription(tenant_id)
    if (row is not None and row.stripe_subscription_id == subscription_id and row.status == "past_due"
            and row.last_event_at == created):
        row.past_due_since = created
        db.session.flush()


def _invoice_subscription(invoice: dict) -> tuple[str | None, dict]:
    """The subscription an invoice bills, and that subscription's metadata (API 2025-03-31 and later: parent)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription_id = _id_of(details.get("subscription")) or _id_of(invoice.get("subscription"))
    return subscription_id, details.get("metadata") or {}


def invoice_changed(event: dict, invoice: dict, client) -> Handled:
    """invoice.paid|payment_failed|payment_action_required: the subscription's state is read from Stripe.

    The invoice does not carry the subscription's status, and Stripe sends
    the subscription's own event in the same second, so the subscription is
    read again and applied as of the invoice event.
    """
    kind, created = event["type"], _created(event)
    customer = _id_of(invoice.get("customer"))
    subscription_id, metadata = _invoice_subscription(invoice)
    if subscription_id is None:
        tenant = tenant_for_stripe(customer) if customer else None
        return Handled(tenant.id if tenant else None, False, "not a subscription's invoice; nothing to apply")
    tenant = tenant_for_stripe(customer, metadata, subscription_id)
    if tenant is None:
        raise UnknownCustomer(f"No tenant for Stripe customer {customer}.")
    tenant_id = tenant.id
    held = subscription_for(tenant)
    last = held.last_event_at if held is not None else None
    db.session.rollback()  # hold no transaction (on SQLite: no write lock) through the Stripe call
    if last is not None and created < last:
        # A newer state is applied already; a read now could not be applied as of this event anyway.
        changed, outcome = False, f"older than the state applied ({last:%Y-%m-%d %H:%M:%S}); ignored"
    else:
        applied = _apply_current(client, subscription_id, created)
        changed, outcome = applied.changed, applied.outcome
    if kind == "invoice.payment_action_required":
        audit.record("stripe", "invoice.action_required", "The bank asks the customer to confirm a payment",
                     tenant_id=tenant_id, invoice=invoice.get("id"),
                     hosted_invoice_url=invoice.get("hosted_invoice_url"))
        outcome = f"the bank asks the customer to confirm the payment; {outcome}"
    return Handled(tenant_id, changed, outcome)


def _checkout_tenant(session: dict, customer: str | None) -> Tenant | None:
    """The tenant that started a Checkout Session: client_reference_id, our metadata, or its customer."""
    for raw in (session.get("client_reference_id"), (session.get("metadata") or {}).get("tenant_id")):
        if raw and str(raw).isdigit() and len(str(raw)) < 12:
            tenant = db.session.get(Tenant, int(raw))
            if tenant is not None:
                return tenant
    return tenant_for_stripe(customer) if customer else None


def checkout_completed(event: dict, session: dict, client) -> Handled:
    """checkout.session.completed: link the customer, then read the new subscription and apply it.

    The session carries only the subscription's id, so it is read from Stripe.
    """
    subscription_id = _id_of(session.get("subscription"))
    if session.get("mode") != "subscription" or subscription_id is None:
        return Handled(None, False, "not a subscription checkout; nothing to apply")
    customer = _id_of(session.get("customer"))
    tenant = _checkout_tenant(session, customer)
    if tenant is None:
        raise UnknownCustomer(f"No tenant for Checkout Session {session.get('id')}.")
    tenant_id = tenant.id
    db.session.rollback()  # hold no transaction through the Stripe call
    obj = client.v1.subscriptions.retrieve(subscription_id).to_dict(for_json=True)
    note = ""
    if customer:
        tenant = db.session.get(Tenant, tenant_id, with_for_update=True)
        holder = db.session.scalar(select(Tenant.id).where(Tenant.stripe_customer_id == customer))
        if tenant.stripe_customer_id is None and holder is None:
            tenant.stripe_customer_id = customer
            audit.record("stripe", "billing.customer_linked", f"Stripe customer {customer} linked",
                         tenant_id=tenant_id)
            note = f"customer {customer} linked; "
        elif tenant.stripe_customer_id != customer:
            note = f"customer {customer} not linked (the tenant's is {tenant.stripe_customer_id}); "
        db.session.commit()
    applied = apply_stripe_subscription(obj, as_of=_created(event))
    return Handled(tenant_id, applied.changed, note + applied.outcome)


HANDLERS = {
    "checkout.session.completed": checkout_completed,
    **{f"customer.subscription.{name}": subscription_changed
       for name in ("created", "updated", "deleted", "trial_will_end", "paused", "resumed")},
    **{f"invoice.{name}": invoice_changed for name in ("paid", "payment_failed", "payment_action_required")},
}


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
