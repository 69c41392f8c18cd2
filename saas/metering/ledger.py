"""Reading the usage ledger, and rolling it up into counters.

Usage is counters plus the entries not rolled up yet, which is exact at every
moment: a roll-up moves entries into counters in one transaction.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from saas.metering.models import UsageCounter, UsageEntry


class Ledger:
    """The ledger's reads and its roll-up, for Metering."""

    @staticmethod
    def _used(conn, tenant_id: int, period_start: datetime, metrics: tuple) -> int:
        """The sum of ``metrics`` in a tenant's period, in one statement (one snapshot: a roll-up
        commits either wholly before it or after)."""
        counted = (select(func.sum(UsageCounter.value)).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period_start == period_start,
            UsageCounter.metric.in_(metrics)).scalar_subquery())
        pending = (select(func.sum(UsageEntry.quantity)).where(
            UsageEntry.tenant_id == tenant_id, UsageEntry.period_start == period_start,
            UsageEntry.metric.in_(metrics)).scalar_subquery())
        # int(): PostgreSQL's SUM of a bigint is a numeric.
        return int(conn.execute(select(func.coalesce(counted, 0) + func.coalesce(pending, 0))).scalar() or 0)

    def usage_for(self, conn, tenant_id: int, period_start: datetime) -> dict[str, int]:
        """Every metric of a tenant's period: counters plus entries not rolled up yet."""
        values: dict[str, int] = defaultdict(int)
        rows = conn.execute(select(UsageCounter.metric, UsageCounter.value).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period_start == period_start))
        pending = conn.execute(
            select(UsageEntry.metric, func.sum(UsageEntry.quantity))
            .where(UsageEntry.tenant_id == tenant_id, UsageEntry.period_start == period_start)
            .group_by(UsageEntry.metric))
        for metric, value in (*rows, *pending):
            values[metric] += int(value or 0)
        return dict(values)

    def used_for(self, conn, wanted: dict[int, tuple[datetime, tuple]]) -> dict[int, int]:
        """What each tenant used of its metrics in its period ({tenant id: (period start, metrics)}), exactly,
        in two queries. For lists of many tenants (the admin console), where ``_used`` per tenant would be
        a query each."""
        if not wanted:
            return {}
        pairs = [(tenant_id, start) for tenant_id, (start, _) in wanted.items()]
        metrics = sorted({metric for _, names in wanted.values() for metric in names})
        used = dict.fromkeys(wanted, 0)
        counted = conn.execute(select(UsageCounter.tenant_id, UsageCounter.metric, UsageCounter.value).where(
            tuple_(UsageCounter.tenant_id, UsageCounter.period_start).in_(pairs), UsageCounter.metric.in_(metrics)))
        pending = conn.execute(
            select(UsageEntry.tenant_id, UsageEntry.metric, func.sum(UsageEntry.quantity))
            .where(tuple_(UsageEntry.tenant_id, UsageEntry.period_start).in_(pairs), UsageEntry.metric.in_(metrics))
            .group_by(UsageEntry.tenant_id, UsageEntry.metric))
        for tenant_id, metric, value in (*counted, *pending):
            if metric in wanted[tenant_id][1]:
                used[tenant_id] += int(value or 0)
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
                .returning(UsageEntry.tenant_id, UsageEntry.period_start, UsageEntry.metric,
                           UsageEntry.quantity)).all()
            totals: dict[tuple, int] = defaultdict(int)
            for tenant_id, period_start, metric, quantity in moved:
                totals[(tenant_id, period_start, metric)] += quantity
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


def _counter_upsert(conn):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(UsageCounter).values(
        tenant_id=bindparam("tenant_id"), period_start=bindparam("period_start"),
        metric=bindparam("metric"), value=bindparam("value"))
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "period_start", "metric"],
        set_={"value": UsageCounter.value + stmt.excluded.value})
