"""The check of what was reported: per tenant and period with overage, the counters, the usage records
decided and reported, and each Billing Meter's event summary must agree (``flask usage check``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import stripe
from sqlalchemy import case, func, select

from saas.billing.pricing import METRIC_MESSAGES, metric_unit
from saas.metering.models import UsageRecord
from saas.metering.reporting import TOO_OLD, describe, unix
from saas.metering.services import Metering
from saas.tenants.models import Tenant
from saas.timeutil import utcnow


@dataclass
class Reconciliation:
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    stripe_compared: bool = False


def _floor_minute(seconds: int) -> int:
    return seconds - seconds % 60


def reconcile(session, client=None, *, event_names: dict[str, str], now: datetime | None = None) -> Reconciliation:
    """Compare what was reported with the local counters and, given a client, with Stripe. Read-only.

    For every tenant and period with overage, for each metric billed: the
    units counted must equal the usage records kept; every overage record
    must be reported (else it is listed as waiting or failed, with its
    error). And for each priced unit (``event_names``: unit -> its meter's
    event name), the event summary of that unit's meter for the tenant's
    customer over the period must equal what was reported of that unit (0
    when none was: an event sent to the wrong meter shows on both). Stripe
    aggregates asynchronously, so run it a few minutes after the last
    report. Without ``client``, only the local side is checked.
    """
    now = now or utcnow()
    result = Reconciliation(stripe_compared=client is not None)
    reported = case((UsageRecord.reported_at.is_not(None), UsageRecord.quantity), else_=0)
    failed = case((UsageRecord.reported_at.is_(None) & (UsageRecord.attempts > 0), UsageRecord.quantity),
                  (UsageRecord.reported_at.is_(None) & (UsageRecord.last_error == TOO_OLD), UsageRecord.quantity),
                  else_=0)
    try:
        rows = session.execute(
            select(UsageRecord.tenant_id, UsageRecord.period_start, UsageRecord.metric, func.sum(UsageRecord.quantity),
                   func.sum(reported), func.sum(failed))
            .where(UsageRecord.overage.is_(True), UsageRecord.voided_at.is_(None))
            .group_by(UsageRecord.tenant_id, UsageRecord.period_start, UsageRecord.metric)
            .order_by(UsageRecord.tenant_id, UsageRecord.period_start, UsageRecord.metric)).all()
        found = _meters(client, event_names, result) if client is not None and rows else None
        periods: dict[tuple, list] = {}
        for tenant_id, period_start, metric, overage, sent, failures in rows:
            periods.setdefault((tenant_id, period_start), []).append((metric, int(overage), int(sent), int(failures)))
        for (tenant_id, period_start), metrics in periods.items():
            where = f"tenant {tenant_id} period {period_start:%Y-%m-%d}"
            for figures in metrics:
                _check_local(session, result, tenant_id, period_start, where, *figures)
            if found is not None:
                _check_stripe(session, client, found, result, tenant_id, period_start, where, metrics, now)
    finally:
        session.rollback()
    return result


def _noun(metric: str) -> str:
    """How a metric's units are called: "conversations", "marketing messages"."""
    if metric.startswith(f"{METRIC_MESSAGES}."):
        return f"{metric.split('.', 1)[1]} messages"
    return metric


def _check_local(session, result: Reconciliation, tenant_id: int, period_start: datetime, where: str,
                 metric: str, overage: int, sent: int, failures: int) -> None:
    """One metric of one period: the units counted against the records kept, and every overage reported."""
    kept = session.scalar(select(func.coalesce(func.sum(UsageRecord.quantity), 0)).where(
        UsageRecord.tenant_id == tenant_id, UsageRecord.period_start == period_start,
        UsageRecord.metric == metric, UsageRecord.voided_at.is_(None)))
    counted = Metering().usage_for(session.connection(), tenant_id, period_start).get(metric, 0)
    result.checked += 2
    if counted != kept:
        result.problems.append(f"{where}: {counted} {_noun(metric)} counted, {kept} usage records kept")
    if sent != overage:
        errors = session.scalars(
            select(UsageRecord.last_error).distinct()
            .where(UsageRecord.tenant_id == tenant_id, UsageRecord.period_start == period_start,
                   UsageRecord.metric == metric, UsageRecord.overage.is_(True), UsageRecord.reported_at.is_(None),
                   UsageRecord.voided_at.is_(None), UsageRecord.last_error.is_not(None)).limit(3)).all()
        result.problems.append(
            f"{where}: {overage} overage {_noun(metric)}, {sent} reported, {overage - sent - failures} waiting, "
            f"{failures} failed" + (f" (last error: {' | '.join(errors)})" if errors else ""))


def _check_stripe(session, client, found: dict, result: Reconciliation, tenant_id: int, period_start: datetime,
                  where: str, metrics: list, now: datetime) -> None:
    """Each meter's event summary of the tenant's customer over the period against what was reported of its unit."""
    customer = session.scalar(select(Tenant.stripe_customer_id).where(Tenant.id == tenant_id))
    if not customer:
        return
    sent = Counter()
    for metric, _, reported, _ in metrics:
        sent[metric_unit(metric)] += reported
    start, end = _window(session, tenant_id, period_start, now)
    for unit, (event_name, meter_id) in found.items():
        if meter_id is None:
            if sent[unit]:
                result.checked += 1
                result.problems.append(f"{where}: {sent[unit]} overage {unit} were reported, but Stripe has no "
                                       f"Billing Meter for the event name {event_name!r}")
            continue
        result.checked += 1
        try:
            summaries = client.v1.billing.meters.event_summaries.list(
                meter_id, params={"customer": customer, "start_time": start, "end_time": end})
        except stripe.StripeError as exc:
            result.problems.append(f"{where}: the summary of Stripe's {unit} meter could not be read: "
                                   f"{describe(exc)}")
            continue
        total = sum(float(s.aggregated_value) for s in summaries.data)
        if total != sent[unit]:
            result.problems.append(f"{where}: Stripe counts {total:g} overage {unit} for {customer}, {sent[unit]} "
                                   f"were reported (meter {meter_id}, event {event_name})")


def _meters(client, event_names: dict[str, str], result: Reconciliation) -> dict | None:
    """Unit -> (its event name, the id of Stripe's Billing Meter of that name, None if there is none); None
    when Stripe's meters cannot be listed."""
    by_name: dict[str, str] = {}
    try:
        # Meters have no filter by event name: list them all (an active one wins over a deactivated one).
        for meter in client.v1.billing.meters.list(params={"limit": 100}).auto_paging_iter():
            if meter.event_name not in by_name or meter.status == "active":
                by_name[meter.event_name] = meter.id
    except stripe.StripeError as exc:
        result.problems.append(f"Stripe's meters could not be listed: {describe(exc)}")
        return None
    return {unit: (name, by_name.get(name)) for unit, name in event_names.items()}


def _window(session, tenant_id: int, period_start: datetime, now: datetime) -> tuple[int, int]:
    """The period as Stripe's summaries take it: minute-aligned, from its start to the tenant's next period.

    A tenant's periods follow one another, so a period ends where the next
    one with usage starts (or now, for the latest). Both ends are rounded
    down to the minute, as Stripe requires, so every event falls in exactly
    one window.
    """
    following = session.scalar(select(func.min(UsageRecord.period_start)).where(
        UsageRecord.tenant_id == tenant_id, UsageRecord.period_start > period_start))
    end = _floor_minute(unix(following)) if following is not None else _floor_minute(unix(now)) + 60
    return _floor_minute(unix(period_start)), end
