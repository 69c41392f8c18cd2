"""The metering port: ``meter`` a unit of usage and get a receipt, ``reverse`` a receipt.

Metering knows tenants, periods, metrics, categories and caps; it knows
nothing of messages. Usage is written as append-only entries in the caller's
transaction, so no two sends ever wait on one shared row; the roll-up moves
entries into counters later. Read usage with ``usage_for``: counters plus the
entries not rolled up yet, which is exact at every moment.

Lock order (every path that writes usage takes rows in this order):
  1. the caller's own rows (a conversation window, a message);
  2. the tenant's quota lock (PostgreSQL advisory lock), only to open a
     billable unit under a hard cap;
  3. usage entries and records (inserted, never updated by a send);
  4. usage counters, only ever by the roll-up, in (tenant, period, metric) order.
"""
from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, delete, exists, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from saas.billing.entitlements import subscribed_rights_apply
from saas.billing.money import json_number, plain_decimal, unit_amount
from saas.metering.many import MeteringMany, quota_exceeded
from saas.metering.models import (
    CATEGORIES, METRIC_CONVERSATIONS, METRIC_MESSAGES, UsageCounter, UsageEntry, UsageRecord, category_metric,
)
from saas.timeutil import month_start, next_month_start, utcnow

# The first key of the two-key advisory lock that serialises a tenant's capped opens.
QUOTA_LOCK_SPACE = 7_000_001


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def last_day(self) -> datetime:
        return self.end - timedelta(microseconds=1)


def current_period(subscription, now: datetime | None = None) -> Period:
    """The billing period ``now`` falls in, for the rights in force at ``now``.

    While the subscribed plan's own rights apply, its period is Stripe's.
    Whenever only the free plan's rights apply (incomplete, incomplete_expired,
    unpaid, canceled, paused, past_due past its grace; or no Stripe period, or
    one Stripe has not renewed yet) it is the calendar month in UTC, so what
    was used this month under the free plan keeps counting against its cap
    whatever period a new Stripe subscription starts. ``subscription`` is a
    Subscription, a SubscriptionState, or None.
    """
    now = now or utcnow()
    start = getattr(subscription, "current_period_start", None)
    end = getattr(subscription, "current_period_end", None)
    if start is not None and end is not None and start <= now < end and subscribed_rights_apply(subscription, now):
        return Period(start, end)
    return Period(month_start(now), next_month_start(now))


@dataclass(frozen=True)
class Usage:
    """What one send uses: a message, and perhaps one newly opened conversation."""

    tenant_id: int
    period_start: datetime
    category: str
    messages: int = 1
    conversations: int = 0


@dataclass(frozen=True)
class Receipt:
    """Proof of metered usage; ``reverse`` takes it (or part of it) back."""

    usage: Usage
    subject: str | None = None  # the billable unit's name, when a conversation was counted


# Built once: the send path runs these on every send.
INSERT_ENTRY = insert(UsageEntry)
INSERT_RECORD = insert(UsageRecord)


class Metering(MeteringMany):
    """Meters usage inside the caller's transaction (a SQLAlchemy Connection); ``meter_many`` for a
    batch (saas.metering.many)."""

    def __init__(self, clock=utcnow):
        self.clock = clock

    def meter(self, conn, usage: Usage, *, cap: int | None = None, subject: str | None = None) -> Receipt:
        """Record ``usage``; raises QuotaExceeded when a new conversation would pass ``cap``.

        Exact under concurrency: opens under a hard cap are serialised per
        tenant by a transaction-scoped lock and counted from the ledger itself.
        On QuotaExceeded the caller rolls back, so nothing is left behind.
        """
        if usage.category not in CATEGORIES:
            raise ValueError(f"unknown category {usage.category!r}")
        now = self.clock()
        if usage.conversations and cap is not None:
            self._lock_quota(conn, usage.tenant_id)
            used = self._used(conn, usage.tenant_id, usage.period_start, METRIC_CONVERSATIONS)
            if used + usage.conversations > cap:
                raise quota_exceeded(cap, used)
        conn.execute(INSERT_ENTRY, {
            "tenant_id": usage.tenant_id, "period_start": usage.period_start, "category": usage.category,
            "messages": usage.messages, "conversations": usage.conversations, "created_at": now})
        if usage.conversations:
            conn.execute(INSERT_RECORD, {
                "tenant_id": usage.tenant_id, "metric": METRIC_CONVERSATIONS, "quantity": usage.conversations,
                "identifier": self.new_record_identifier(), "subject": subject or "",
                "period_start": usage.period_start, "created_at": now, "attempts": 0})
        return Receipt(usage, subject if usage.conversations else None)

    def reverse(self, conn, receipt: Receipt) -> None:
        """Take ``receipt``'s usage back in the caller's transaction (the same way it was made).

        The caller makes sure it reverses a receipt once (e.g. by moving its own
        row out of a state in the same transaction).
        """
        usage = receipt.usage
        if not usage.messages and not usage.conversations:
            return
        conn.execute(INSERT_ENTRY, {
            "tenant_id": usage.tenant_id, "period_start": usage.period_start, "category": usage.category,
            "messages": -usage.messages, "conversations": -usage.conversations, "created_at": self.clock()})
        if usage.conversations and receipt.subject:
            conn.execute(
                update(UsageRecord)
                .where(UsageRecord.tenant_id == usage.tenant_id, UsageRecord.subject == receipt.subject,
                       UsageRecord.voided_at.is_(None), UsageRecord.reported_at.is_(None))
                .values(voided_at=self.clock()))

    def decided(self, conn, tenant_id: int, subject: str) -> bool:
        """Whether the billable unit ``subject`` was already decided for Stripe (reported as overage, or
        counted within the plan's included amount): its usage can no longer be taken back."""
        return bool(conn.execute(select(exists().where(
            UsageRecord.tenant_id == tenant_id, UsageRecord.subject == subject, UsageRecord.voided_at.is_(None),
            UsageRecord.reported_at.is_not(None)))).scalar())

    def meter_within(self, conn, with_list: str, source: str, final_select: str, params: dict):
        """The port's one-statement form (PostgreSQL, no cap): meter inside the caller's statement.

        ``with_list`` is a ``WITH ...`` whose CTE ``source`` yields the rows to
        meter (columns tenant_id, period_start, category, opened, subject);
        the ledger's own CTEs are appended, then ``final_select``. Writes
        exactly what ``meter`` writes for each row, in the same statement, so
        the caller's rows and their usage commit together in one round trip.
        Returns the result of the whole statement.
        """
        params = {**params, "now": params.get("now") or self.clock(),
                  "record_identifier": self.new_record_identifier()}
        return conn.execute(_composed(with_list, source, final_select), params)

    @staticmethod
    def _ledger_ctes(source: str) -> str:
        return f"""
        , usage_entry AS (
            INSERT INTO usage_entries (tenant_id, period_start, category, messages, conversations, created_at)
            SELECT tenant_id, period_start, category, 1, CASE WHEN opened THEN 1 ELSE 0 END, :now
            FROM {source}
        ), usage_record AS (
            INSERT INTO usage_records (tenant_id, metric, quantity, identifier, subject, period_start,
                                       created_at, attempts)
            SELECT tenant_id, '{METRIC_CONVERSATIONS}', 1, :record_identifier, subject, period_start, :now, 0
            FROM {source} WHERE opened
        )"""

    @staticmethod
    def new_record_identifier() -> str:
        """A usage record's identifier, which Stripe dedupes meter events on."""
        return f"conv_{uuid.uuid4().hex}"

    def _lock_quota(self, conn, tenant_id: int) -> None:
        # SQLite needs nothing: BEGIN IMMEDIATE already serialises writers.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:space, :tenant)"),
                         {"space": QUOTA_LOCK_SPACE, "tenant": tenant_id})

    @staticmethod
    def _used(conn, tenant_id: int, period_start: datetime, metric: str) -> int:
        column = {METRIC_MESSAGES: UsageEntry.messages, METRIC_CONVERSATIONS: UsageEntry.conversations}[metric]
        counted = (select(UsageCounter.value).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period_start == period_start,
            UsageCounter.metric == metric).scalar_subquery())
        pending = (select(func.sum(column)).where(
            UsageEntry.tenant_id == tenant_id, UsageEntry.period_start == period_start).scalar_subquery())
        # One statement, one snapshot: a roll-up commits either wholly before it or after.
        return conn.execute(select(func.coalesce(counted, 0) + func.coalesce(pending, 0))).scalar() or 0

    def usage_for(self, conn, tenant_id: int, period_start: datetime) -> dict[str, int]:
        """Every metric of a tenant's period: counters plus entries not rolled up yet."""
        values: dict[str, int] = defaultdict(int)
        rows = conn.execute(select(UsageCounter.metric, UsageCounter.value).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period_start == period_start))
        for metric, value in rows:
            values[metric] += value
        pending = conn.execute(
            select(UsageEntry.category, func.sum(UsageEntry.messages), func.sum(UsageEntry.conversations))
            .where(UsageEntry.tenant_id == tenant_id, UsageEntry.period_start == period_start)
            .group_by(UsageEntry.category))
        for category, messages, conversations in pending:
            values[METRIC_MESSAGES] += messages or 0
            values[METRIC_CONVERSATIONS] += conversations or 0
            values[category_metric(category)] += conversations or 0
        return dict(values)

    def conversations_for(self, conn, periods: dict[int, datetime]) -> dict[int, int]:
        """Conversations each tenant used in its period ({tenant id: period start}), exactly, in two queries.

        For lists of many tenants (the admin console), where ``usage_for`` per tenant would be a query pair each.
        """
        if not periods:
            return {}
        pairs = list(periods.items())
        used = dict.fromkeys(periods, 0)
        counted = conn.execute(select(UsageCounter.tenant_id, UsageCounter.value).where(
            tuple_(UsageCounter.tenant_id, UsageCounter.period_start).in_(pairs),
            UsageCounter.metric == METRIC_CONVERSATIONS))
        pending = conn.execute(
            select(UsageEntry.tenant_id, func.sum(UsageEntry.conversations))
            .where(tuple_(UsageEntry.tenant_id, UsageEntry.period_start).in_(pairs))
            .group_by(UsageEntry.tenant_id))
        for tenant_id, value in (*counted, *pending):
            used[tenant_id] += value or 0
        return used

    def periods(self, conn) -> set[tuple[int, datetime]]:
        """Every (tenant, period) with usage, rolled up or not."""
        counted = conn.execute(select(UsageCounter.tenant_id, UsageCounter.period_start).distinct())
        pending = conn.execute(select(UsageEntry.tenant_id, UsageEntry.period_start).distinct())
        return {tuple(row) for row in counted} | {tuple(row) for row in pending}

    def roll_up(self, session, *, batch: int = 5000) -> int:
        """Move up to ``batch`` ledger entries into the counters, in one transaction. Commits.

        Safe to run in every process at once: entries are claimed with SKIP
        LOCKED and counters are written in one global order. Returns how many
        entries moved.
        """
        conn = session.connection()
        try:
            ids = select(UsageEntry.id).order_by(UsageEntry.id).limit(batch)
            if conn.dialect.name == "postgresql":
                ids = ids.with_for_update(skip_locked=True)
            claimed = [row[0] for row in conn.execute(ids)]
            if not claimed:
                session.commit()
                return 0
            moved = conn.execute(
                delete(UsageEntry).where(UsageEntry.id.in_(claimed))
                .returning(UsageEntry.tenant_id, UsageEntry.period_start, UsageEntry.category,
                           UsageEntry.messages, UsageEntry.conversations)).all()
            totals: dict[tuple, int] = defaultdict(int)
            for tenant_id, period_start, category, messages, conversations in moved:
                totals[(tenant_id, period_start, METRIC_MESSAGES)] += messages
                if conversations:
                    totals[(tenant_id, period_start, METRIC_CONVERSATIONS)] += conversations
                    totals[(tenant_id, period_start, category_metric(category))] += conversations
            rows = [{"tenant_id": t, "period_start": p, "metric": m, "value": v}
                    for (t, p, m), v in sorted(totals.items()) if v]
            if rows:
                conn.execute(_counter_upsert(conn), rows)
        except BaseException:
            session.rollback()
            raise
        session.commit()
        return len(moved)

    def roll_up_all(self, session) -> int:
        """Roll up until no entry is left; returns how many moved."""
        moved = total = self.roll_up(session)
        while moved:
            moved = self.roll_up(session)
            total += moved
        return total


@functools.lru_cache(maxsize=32)
def _composed(with_list: str, source: str, final_select: str):
    return text(with_list + Metering._ledger_ctes(source) + "\n" + final_select)


def _counter_upsert(conn):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(UsageCounter).values(
        tenant_id=bindparam("tenant_id"), period_start=bindparam("period_start"),
        metric=bindparam("metric"), value=bindparam("value"))
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "period_start", "metric"],
        set_={"value": UsageCounter.value + stmt.excluded.value})


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
            "metric": METRIC_CONVERSATIONS,
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
    from saas.billing import entitlements
    from saas.billing.services import subscription_for
    from saas.extensions import db

    subscription = subscription or subscription_for(tenant)
    rights = rights or entitlements.for_tenant(tenant, subscription)
    period = current_period(subscription)
    values = Metering().usage_for(db.session.connection(), tenant.id, period.start)
    return UsageSummary(
        period=period,
        plan_code=rights.effective.code,
        plan_name=rights.effective.name,
        quota=rights.included_conversations,
        used=values.get(METRIC_CONVERSATIONS, 0),
        hard_cap=rights.hard_cap,
        overage_cents=rights.effective.overage_cents,
        by_category={c: values.get(category_metric(c), 0) for c in CATEGORIES},
        messages=values.get(METRIC_MESSAGES, 0),
    )
