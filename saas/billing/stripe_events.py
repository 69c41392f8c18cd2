"""What each Stripe event does to a tenant's subscription; the webhook's ledger calls ``handle``.

Each handler applies the state its event carries, or reads the subscription
again from Stripe where the event does not say which state came last, always
through ``services.apply_stripe_subscription`` (as of the event's ``created``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from saas.audit import services as audit
from saas.billing.models import Subscription
from saas.billing.services import (ENDED, Applied, UnknownCustomer, apply_stripe_subscription, subscription_for,
                                   tenant_for_stripe)
from saas.billing.stripe_fields import is_stripe_id
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp

UNKNOWN_CUSTOMER = "unknown customer"


@dataclass(frozen=True)
class Handled:
    tenant_id: int | None
    changed: bool
    outcome: str


def handle(event: dict, client) -> Handled:
    """Apply one verified event (the ledger holds it); unknown types only find their tenant."""
    obj = event["data"]["object"]
    handler = HANDLERS.get(event["type"])
    if handler is None:
        customer = _id_of(obj.get("customer"))
        tenant = tenant_for_stripe(customer) if is_stripe_id(customer) else None
        return Handled(tenant.id if tenant else None, False, "not handled; recorded")
    try:
        return handler(event, obj, client)
    except UnknownCustomer:
        # Answered 200: Stripe retrying cannot make the customer ours. If it is ours after all (a
        # customer linked by hand, say), `flask billing resync` re-reads its subscription.
        db.session.rollback()
        return Handled(None, False, UNKNOWN_CUSTOMER)


def _id_of(value) -> str | None:
    """A Stripe reference: an id, or the expanded object carrying it; None for anything else."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


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
