"""Repair what missed webhooks left stale: replay Stripe's undelivered events, then re-read every subscription."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, timezone

import stripe
from sqlalchemy import or_, select

from saas.billing.models import Plan, Subscription
from saas.billing.services import ENDED, UnknownCustomer, apply_stripe_subscription
from saas.billing.stripe_fields import UnstorableStripeObject
from saas.billing.webhooks import EventFailed, EventInProgress, process_event
from saas.errors import BillingUnavailable, InvalidRequest
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import utcnow

# Stripe keeps events for 30 days.
EVENT_DAYS = 30
PAGE = 100


@dataclass
class Report:
    events: int = 0             # undelivered events Stripe listed
    applied: int = 0            # of which processed now
    already: int = 0            # of which the ledger had processed before
    checked: int = 0            # subscriptions read from Stripe
    changes: list[str] = field(default_factory=list)   # "tenant acme: Pro, active -> Pro, past_due"
    failures: list[str] = field(default_factory=list)


def _no_progress(items, label):
    return items


def run(client, *, progress=_no_progress) -> Report:
    """Replay the undelivered events of the last 30 days, then re-read every tenant's subscription. Commits.

    Safe to run at any time and any number of times: events go through the
    webhook ledger (processed ones are no-ops) and a subscription read now is
    applied only over older state. ``progress(items, label)`` wraps each
    loop (the CLI passes a progress bar). Raises BillingUnavailable when
    Stripe cannot list the events; a subscription or event that fails is
    reported in ``failures`` and the rest carry on.
    """
    report = Report()
    before = standing()
    events = missed_events(client)
    report.events = len(events)
    for event in progress(events, "Undelivered events"):
        try:
            processed = process_event(event, client)
        except (EventFailed, EventInProgress, InvalidRequest) as exc:
            report.failures.append(f"event {event['id']} ({event['type']}): {exc.message}")
            continue
        if processed.duplicate:
            report.already += 1
        else:
            report.applied += 1
    tenants = _tenants_on_stripe()
    for tenant_id, slug in progress(tenants, "Subscriptions"):
        try:
            if refresh_subscription(tenant_id, client) is not None:
                report.checked += 1
        except stripe.StripeError as exc:
            db.session.rollback()
            report.failures.append(f"tenant {slug}: Stripe failed: {exc.user_message or exc}")
        except (UnknownCustomer, UnstorableStripeObject) as exc:
            report.failures.append(f"tenant {slug}: {exc}")
    after = standing()
    for tenant_id, (slug, now) in after.items():
        was = before.get(tenant_id, (slug, None))[1]
        if was != now:
            report.changes.append(f"tenant {slug}: {was or 'nothing'} -> {now}")
    return report


def missed_events(client, *, days: int = EVENT_DAYS) -> list[dict]:
    """Stripe's events of the last ``days`` days that failed to reach a webhook endpoint, oldest first.

    Raises BillingUnavailable when Stripe fails.
    """
    since = int((utcnow() - timedelta(days=days)).replace(tzinfo=timezone.utc).timestamp())
    params = {"delivery_success": False, "created": {"gte": since}, "limit": PAGE}
    events: list[dict] = []
    try:
        while True:
            page = client.v1.events.list(params=params)
            events += [event.to_dict(for_json=True) for event in page.data]
            if not page.has_more or not page.data:
                break
            params = {**params, "starting_after": page.data[-1].id}
    except stripe.StripeError as exc:
        raise BillingUnavailable(f"Stripe could not list its undelivered events: {exc.user_message or exc}") from None
    # Oldest first, as they happened; the ledger and last_event_at make any order safe anyway.
    return sorted(events, key=lambda event: event["created"])


def refresh_subscription(tenant_id: int, client):
    """Read the tenant's subscription from Stripe and apply it; the Applied, or None with nothing to read.

    The subscription is the one we know, or else (a customer without one)
    the customer's newest subscription that has not ended. Raises
    stripe.StripeError when Stripe fails.
    """
    tenant = db.session.get(Tenant, tenant_id)
    subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
    known = subscription.stripe_subscription_id if subscription is not None else None
    customer = tenant.stripe_customer_id
    db.session.rollback()  # hold no transaction (on SQLite: no write lock) through the Stripe calls
    # Applied as of the second before the read began: every change Stripe makes after that
    # second has a `created` at least as late, so its event still wins when it arrives; a late
    # event for a change this read already saw is older and changes nothing.
    as_of = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    if known:
        obj = client.v1.subscriptions.retrieve(known).to_dict(for_json=True)
    elif customer:
        listed = client.v1.subscriptions.list(params={"customer": customer, "status": "all", "limit": PAGE})
        live = [s.to_dict(for_json=True) for s in listed.data if s.status not in ENDED]
        if not live:
            return None
        obj = max(live, key=lambda s: s["created"])
    else:
        return None
    return apply_stripe_subscription(obj, as_of=as_of, actor="cli")


def _tenants_on_stripe() -> list[tuple[int, str]]:
    rows = db.session.execute(
        select(Tenant.id, Tenant.slug).outerjoin(Subscription, Subscription.tenant_id == Tenant.id)
        .where(or_(Subscription.stripe_subscription_id.is_not(None), Tenant.stripe_customer_id.is_not(None)))
        .order_by(Tenant.id)).all()
    db.session.rollback()
    return [(row.id, row.slug) for row in rows]


def standing() -> dict[int, tuple[str, str]]:
    """Every tenant's plan and status, "Pro, active", by tenant id."""
    rows = db.session.execute(
        select(Tenant.id, Tenant.slug, Plan.name, Subscription.status)
        .join(Subscription, Subscription.tenant_id == Tenant.id).join(Plan, Plan.id == Subscription.plan_id)).all()
    db.session.rollback()
    return {row.id: (row.slug, f"{row.name}, {row.status}") for row in rows}
