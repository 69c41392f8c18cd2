"""Usage counters and periods. Every change to a counter is one atomic SQL statement."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from saas.errors import QuotaExceeded
from saas.extensions import db
from saas.messaging.models import CATEGORIES
from saas.metering.models import METRIC_CONVERSATIONS, METRIC_MESSAGES, UsageCounter, category_metric
from saas.timeutil import month_start, next_month_start, utcnow


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def last_day(self) -> datetime:
        return self.end - timedelta(microseconds=1)


def current_period(subscription, now: datetime | None = None) -> Period:
    """The billing period ``now`` falls in.

    A paid subscription's period comes from Stripe; otherwise (free plan, or a
    period Stripe has not renewed yet) it is the calendar month in UTC.
    """
    now = now or utcnow()
    if (subscription is not None and subscription.current_period_start is not None
            and subscription.current_period_end is not None
            and subscription.current_period_start <= now < subscription.current_period_end):
        return Period(subscription.current_period_start, subscription.current_period_end)
    return Period(month_start(now), next_month_start(now))


def _upsert():
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(UsageCounter)
    if dialect == "sqlite":
        return sqlite.insert(UsageCounter)
    raise RuntimeError(f"counters need INSERT .. ON CONFLICT, which {dialect} lacks here")


def increment(tenant_id: int, period_start: datetime, metric: str, by: int = 1,
              *, cap: int | None = None) -> int | None:
    """Add ``by`` to a counter in one statement; returns the new value.

    With ``cap``, the addition happens only while the value stays within it;
    None is returned when it would not. Runs inside the caller's transaction.
    """
    if cap is not None and by > cap:
        return None
    stmt = _upsert().values(tenant_id=tenant_id, period_start=period_start, metric=metric, value=by)
    where = None
    if cap is not None:
        where = UsageCounter.value + by <= cap
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "period_start", "metric"],
        set_={"value": UsageCounter.value + by},
        where=where,
    ).returning(UsageCounter.value)
    return db.session.execute(stmt).scalar()


def decrement(tenant_id: int, period_start: datetime, metric: str, by: int = 1) -> None:
    """Undo an increment, the same way it was made: one UPDATE."""
    db.session.execute(
        update(UsageCounter)
        .where(UsageCounter.tenant_id == tenant_id, UsageCounter.period_start == period_start,
               UsageCounter.metric == metric)
        .values(value=UsageCounter.value - by)
    )


def count_conversation(tenant_id: int, period_start: datetime, category: str,
                       *, cap: int | None) -> int:
    """Count one newly opened conversation; raises QuotaExceeded past a hard cap."""
    value = increment(tenant_id, period_start, METRIC_CONVERSATIONS, cap=cap)
    if value is None:
        raise QuotaExceeded(
            f"Your plan includes {cap} conversations this period and all of them are used. "
            "Upgrade your plan to send more.",
            details={"quota": cap, "metric": METRIC_CONVERSATIONS},
            upgrade=True,
        )
    increment(tenant_id, period_start, category_metric(category))
    return value


def uncount_conversation(tenant_id: int, period_start: datetime, category: str) -> None:
    decrement(tenant_id, period_start, METRIC_CONVERSATIONS)
    decrement(tenant_id, period_start, category_metric(category))


def counters(tenant_id: int, period_start: datetime) -> dict[str, int]:
    rows = db.session.execute(
        select(UsageCounter.metric, UsageCounter.value)
        .where(UsageCounter.tenant_id == tenant_id, UsageCounter.period_start == period_start)
    )
    return {metric: value for metric, value in rows}


@dataclass(frozen=True)
class UsageSummary:
    period: Period
    plan_code: str
    plan_name: str
    quota: int
    used: int
    hard_cap: bool
    overage_cents: int | None
    by_category: dict
    messages: int

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
            "overage_price_cents": self.overage_cents,
            "by_category": self.by_category,
            "messages": self.messages,
        }


def usage_summary(tenant, subscription=None, rights=None) -> UsageSummary:
    """The tenant's usage in the current period against what its plan includes.

    Pass the subscription and entitlements when the caller has them already.
    """
    from saas.billing import entitlements
    from saas.billing.services import subscription_for

    subscription = subscription or subscription_for(tenant)
    rights = rights or entitlements.for_tenant(tenant, subscription)
    period = current_period(subscription)
    values = counters(tenant.id, period.start)
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
