"""The metering port: ``meter(units) -> receipt``, ``reverse(receipt)``; and sends metered as billing prices them.

Metering counts whatever units it is given ({metric: quantity}) and writes
the usage record of the billable unit among them; it knows nothing of
messages. What a send counts, and whether its quota lets it go, is for
billing's pricing policy to say (saas.billing.pricing): ``meter_send`` asks
it. Usage is written as append-only entries in the caller's transaction, so
no two sends ever wait on one shared row; the roll-up moves entries into
counters later (saas.metering.ledger). Read usage with ``usage_for``:
counters plus the entries not rolled up yet, which is exact at every moment.

Lock order (every path that writes usage takes rows in this order):
  1. the caller's own rows (a conversation window, a message);
  2. the tenant's quota lock (PostgreSQL advisory lock), only while the
     pricing policy counts usage to decide a send under a hard cap;
  3. usage entries and records (inserted, never updated by a send);
  4. usage counters, only ever by the roll-up, in (tenant, period, metric) order.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import exists, insert, select, text, update

from saas.billing import entitlements
from saas.billing.entitlements import subscribed_rights_apply
from saas.billing.models import CATEGORIES, UNIT_MESSAGES
from saas.billing.money import json_number, plain_decimal, unit_amount
from saas.billing.pricing import (
    CONVERSATION, METRIC_MESSAGES, PricingPolicy, Send, conversation_metric, message_metric, quota, unit_counts,
)
from saas.metering import statements
from saas.metering.ledger import Ledger
from saas.metering.many import MeteringMany
from saas.metering.models import UsageEntry, UsageRecord
from saas.timeutil import month_start, next_month_start, utcnow

# The first key of the two-key advisory lock that serialises a tenant's capped sends.
QUOTA_LOCK_SPACE = 7_000_001


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def last_day(self) -> datetime:
        return self.end - timedelta(microseconds=1)


def current_period(subscription, now: datetime | None = None, grace=None) -> Period:
    """The billing period ``now`` falls in, for the rights in force at ``now``.

    While the subscribed plan's own rights apply, its period is Stripe's.
    Whenever only the free plan's rights apply (incomplete, incomplete_expired,
    unpaid, canceled, paused, past_due past its grace; or no Stripe period, or
    one Stripe has not renewed yet) it is the calendar month in UTC, so what
    was used this month under the free plan keeps counting against its cap
    whatever period a new Stripe subscription starts. ``subscription`` is a
    Subscription, a SubscriptionState, or None; ``grace`` the past-due grace
    (saas.billing.standing.PastDueGrace; None: the current app's).
    """
    now = now or utcnow()
    start = getattr(subscription, "current_period_start", None)
    end = getattr(subscription, "current_period_end", None)
    if (start is not None and end is not None and start <= now < end
            and subscribed_rights_apply(subscription, now, grace)):
        return Period(start, end)
    return Period(month_start(now), next_month_start(now))


@dataclass(frozen=True)
class Usage:
    """Units counted in a tenant's period: {metric: quantity}."""

    tenant_id: int
    period_start: datetime
    units: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """Proof of metered usage; ``reverse`` takes it (or part of it) back."""

    usage: Usage
    subject: str | None = None  # the billable unit's name, when its usage record was written


def current_rights(tenant_id: int):
    """The tenant's rights now, in the current app context (for pricing a send whose caller has none at
    hand; the app's Metering is given its own ``rights_of``, which needs no app context)."""
    return entitlements.in_app().for_tenant_id(tenant_id)


# Built once: the send path runs these on every send.
INSERT_ENTRY = insert(UsageEntry)
INSERT_RECORD = insert(UsageRecord)


class Metering(Ledger, MeteringMany):
    """Meters usage inside the caller's transaction (a SQLAlchemy Connection); ``meter_many`` for a
    batch of sends (saas.metering.many).

    ``pricing`` is billing's pricing policy; ``rights_of(tenant_id)`` gives a
    tenant's rights when a caller meters a send without them.
    """

    def __init__(self, clock=utcnow, pricing=None, rights_of=None):
        self.clock = clock
        self.pricing = pricing or PricingPolicy()
        self.rights_of = rights_of or current_rights

    # -- the port --------------------------------------------------------------------------------
    def meter(self, conn, usage: Usage, *, billed: str | None = None, subject: str | None = None) -> Receipt:
        """Count ``usage``'s units; with ``billed`` (one of its metrics), write that billable unit's usage
        record, named ``subject``. In the caller's transaction; refuses nothing (``meter_send`` may)."""
        now = self.clock()
        self._count(conn, usage, 1, now)
        quantity = usage.units.get(billed, 0) if billed else 0
        if quantity:
            kind = (subject or "").split(":", 1)[0]
            conn.execute(INSERT_RECORD, {
                "tenant_id": usage.tenant_id, "metric": billed, "quantity": quantity,
                "identifier": self.new_record_identifier(kind), "subject": subject or "",
                "period_start": usage.period_start, "created_at": now, "attempts": 0})
        return Receipt(usage, subject if quantity else None)

    def reverse(self, conn, receipt: Receipt) -> None:
        """Take ``receipt``'s usage back in the caller's transaction (the same way it was made): its units
        counted off, and its usage record voided unless it was reported.

        The caller makes sure it reverses a receipt once (e.g. by moving its own
        row out of a state in the same transaction).
        """
        now = self.clock()
        self._count(conn, receipt.usage, -1, now)
        if receipt.subject:
            usage = receipt.usage
            conn.execute(
                update(UsageRecord)
                .where(UsageRecord.tenant_id == usage.tenant_id, UsageRecord.subject == receipt.subject,
                       UsageRecord.voided_at.is_(None), UsageRecord.reported_at.is_(None))
                .values(voided_at=now))

    @staticmethod
    def _count(conn, usage: Usage, sign: int, now: datetime) -> None:
        entries = [{"tenant_id": usage.tenant_id, "period_start": usage.period_start, "metric": metric,
                    "quantity": sign * quantity, "created_at": now}
                   for metric, quantity in usage.units.items() if quantity]
        if entries:
            conn.execute(INSERT_ENTRY, entries)

    # -- sends, priced by billing ----------------------------------------------------------------
    def may_refuse(self, rights) -> bool:
        """Whether a send under ``rights`` may be refused for its quota: such a send is metered with
        ``meter_send``, never in the one-statement form."""
        return self.pricing.may_refuse(rights)

    def meter_send(self, conn, rights, tenant_id: int, period_start: datetime, send: Send, *,
                   refusable: bool = True) -> Receipt:
        """Meter one send as the pricing policy prices it under ``rights`` (None: the tenant's rights now).

        ``refusable``: the policy first decides its quota, and raises QuotaExceeded
        or PaymentRequired (the caller rolls back, so nothing is left behind).
        Exact under concurrency: a decision that counts usage counts it from
        the ledger itself, under a transaction-scoped lock per tenant. Not
        ``refusable``: a send that went out is billed whatever its quota says.
        """
        if send.category not in CATEGORIES:
            raise ValueError(f"unknown category {send.category!r}")
        rights = rights if rights is not None else self.rights_of(tenant_id)
        charge = self.pricing.charge(rights, send)
        if refusable and charge.billed is not None:
            self.pricing.admit(rights, send, self._counter(conn, tenant_id, period_start))
        return self.meter(conn, Usage(tenant_id, period_start, charge.units), billed=charge.billed,
                          subject=charge.subject)

    def meter_within(self, conn, rights, with_list: str, source: str, final_select: str, params: dict):
        """``meter_send``'s one-statement form (PostgreSQL), for a send ``may_refuse`` says is never refused.

        ``with_list`` is a ``WITH ...`` whose CTE ``source`` yields the rows to
        meter (columns tenant_id, period_start, opened, conversation_id,
        message_id; ``params["category"]`` is their category); the ledger's
        own CTEs are appended, then ``final_select``. Writes exactly what
        ``meter_send`` writes for each row, in the same statement, so the
        caller's rows and their usage commit together in one round trip.
        Returns the result of the whole statement.
        """
        opened = self.pricing.charge(rights, Send(params["category"], opened=True))
        joined = self.pricing.charge(rights, Send(params["category"], opened=False))
        units = statements.unit_params(opened, joined)
        params = {**params, **units, "now": params.get("now") or self.clock(),
                  "record_identifier": self.new_record_identifier(opened.kind or joined.kind)}
        return conn.execute(statements.composed(with_list, source, final_select, statements.unit_count(units)),
                            params)

    def unbill(self, conn, tenant_id: int, period_start: datetime, category: str, subject: str) -> bool:
        """Take back the billable unit ``subject`` (in ``category``): its usage record voided and what it
        counted counted off, in the caller's transaction. Nothing when it was never billed, or was
        decided for Stripe already (then it stays billed). Whether it was taken back."""
        voided = conn.execute(
            update(UsageRecord)
            .where(UsageRecord.tenant_id == tenant_id, UsageRecord.subject == subject,
                   UsageRecord.voided_at.is_(None), UsageRecord.reported_at.is_(None))
            .values(voided_at=self.clock())
            .returning(UsageRecord.metric, UsageRecord.quantity)).all()
        units: dict[str, int] = defaultdict(int)
        for metric, quantity in voided:
            for name, n in unit_counts(metric, category, quantity).items():
                units[name] += n
        self._count(conn, Usage(tenant_id, period_start, dict(units)), -1, self.clock())
        return bool(voided)

    def decided(self, conn, tenant_id: int, subject: str) -> bool:
        """Whether the billable unit ``subject`` was already decided for Stripe (reported as overage, or
        counted within the plan's included amount): its usage can no longer be taken back."""
        return bool(conn.execute(select(exists().where(
            UsageRecord.tenant_id == tenant_id, UsageRecord.subject == subject, UsageRecord.voided_at.is_(None),
            UsageRecord.reported_at.is_not(None)))).scalar())

    @staticmethod
    def new_record_identifier(kind: str | None = CONVERSATION) -> str:
        """A usage record's identifier, which Stripe dedupes meter events on."""
        return f"{'conv' if kind == CONVERSATION else 'msg'}_{uuid.uuid4().hex}"

    def _counter(self, conn, tenant_id: int, period_start: datetime):
        """``used(metrics)`` for the pricing policy: the tenant's quota lock is taken at its first count."""
        locked = []

        def used(metrics) -> int:
            if not locked:
                self._lock_quota(conn, tenant_id)
                locked.append(True)
            return self._used(conn, tenant_id, period_start, tuple(metrics))

        return used

    def _lock_quota(self, conn, tenant_id: int) -> None:
        # SQLite needs nothing: BEGIN IMMEDIATE already serialises writers.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:space, :tenant)"),
                         {"space": QUOTA_LOCK_SPACE, "tenant": tenant_id})


@dataclass(frozen=True)
class UsageSummary:
    period: Period
    plan_code: str
    plan_name: str
    quota: int
    used: int
    hard_cap: bool
    overage_cents: Decimal | None
    by_category: dict
    messages: int
    unit: str = "conversations"  # what quota and used count: "conversations" or "messages"

    @property
    def overage_amount(self) -> str | None:
        """The overage price in the currency's units, exactly ("0.005"); None: a hard cap."""
        return None if self.overage_cents is None else unit_amount(self.overage_cents)

    @property
    def remaining(self) -> int:
        return max(self.quota - self.used, 0)

    @property
    def overage(self) -> int:
        return max(self.used - self.quota, 0)

    @property
    def percent(self) -> int:
        if self.quota <= 0:
            return 100
        return min(100, round(100 * self.used / self.quota))

    def as_dict(self) -> dict:
        from saas.timeutil import iso

        return {
            "period": {"start": iso(self.period.start), "end": iso(self.period.end)},
            "plan": {"code": self.plan_code, "name": self.plan_name},
            "metric": self.unit,
            "quota": self.quota,
            "used": self.used,
            "remaining": self.remaining,
            "overage": self.overage,
            "hard_cap": self.hard_cap,
            # A number (whole cents stay integers), and exactly, as Stripe's unit_amount_decimal is.
            "overage_price_cents": json_number(self.overage_cents),
            "overage_price_cents_decimal": None if self.overage_cents is None else plain_decimal(self.overage_cents),
            "by_category": self.by_category,
            "messages": self.messages,
        }


def usage_summary(tenant, subscription=None, rights=None) -> UsageSummary:
    """The tenant's usage in the current period against what its plan includes (exact, never trailing).

    Pass the subscription and entitlements when the caller has them already.
    """
    from saas.billing.services import subscription_for
    from saas.extensions import db

    subscription = subscription or subscription_for(tenant)
    rights = rights or entitlements.for_tenant(tenant, subscription)
    period = current_period(subscription)
    values = Metering().usage_for(db.session.connection(), tenant.id, period.start)
    terms = quota(rights.effective)
    per_category = message_metric if terms.unit == UNIT_MESSAGES else conversation_metric
    return UsageSummary(
        period=period,
        plan_code=rights.effective.code,
        plan_name=rights.effective.name,
        quota=terms.included,
        used=sum(values.get(metric, 0) for metric in terms.metrics),
        hard_cap=terms.hard_cap,
        overage_cents=rights.effective.overage_cents,
        by_category={c: values.get(per_category(c), 0) for c in CATEGORIES},
        messages=values.get(METRIC_MESSAGES, 0),
        unit=terms.unit,
    )
