"""``flask analytics rebuild``: the roll-ups recomputed from the message rows, for a backfill and to show
that the roll-ups the events kept equal what the rows say."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import delete, func, insert, select, text

from saas.analytics.models import AMOUNTS, COUNTS, KEY, CountedMessage, DailyFailures, DailyFigures
from saas.analytics.shares import SHARE, share_select
from saas.messaging.models import Message


@dataclass(frozen=True)
class Rebuilt:
    messages: int
    rows: int
    failure_rows: int


def _since(table, since: date | None):
    statement = delete(table)
    return statement if since is None else statement.where(table.day >= since)


def rebuild(session, since: date | None = None) -> Rebuilt:
    """Recompute the roll-ups of the days from ``since`` (every day when None) from the messages, in one
    transaction: the shares, then the roll-ups as their sums. Commits. On PostgreSQL the consumer waits
    meanwhile (it finds the shares locked), then goes on from the rebuilt ones."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE analytics_counted IN EXCLUSIVE MODE"))
    for table in (CountedMessage, DailyFigures, DailyFailures):
        conn.execute(_since(table, since))
    shares = share_select()
    if since is not None:
        shares = shares.where(Message.created_at >= datetime.combine(since, time.min))
    conn.execute(insert(CountedMessage).from_select(["tenant_id", "message_id", *SHARE], shares))
    counted = select(CountedMessage.tenant_id, *(getattr(CountedMessage, name) for name in KEY),
                     *(func.sum(getattr(CountedMessage, name)) for name in (*COUNTS, *AMOUNTS)))
    if since is not None:
        counted = counted.where(CountedMessage.day >= since)
    conn.execute(insert(DailyFigures).from_select(
        ["tenant_id", *KEY, *COUNTS, *AMOUNTS],
        counted.group_by(CountedMessage.tenant_id, *(getattr(CountedMessage, name) for name in KEY))))
    failed = (select(CountedMessage.tenant_id, CountedMessage.day, CountedMessage.phone_number_id,
                     CountedMessage.error_code, func.count())
              .where(CountedMessage.failed == 1)
              .group_by(CountedMessage.tenant_id, CountedMessage.day, CountedMessage.phone_number_id,
                        CountedMessage.error_code))
    if since is not None:
        failed = failed.where(CountedMessage.day >= since)
    conn.execute(insert(DailyFailures).from_select(
        ["tenant_id", "day", "phone_number_id", "error_code", "failed"], failed))
    # Counted again (the drivers' rowcount of INSERT ... SELECT is not to be relied on).
    done = Rebuilt(*(conn.scalar(_count(table, since)) for table in (CountedMessage, DailyFigures, DailyFailures)))
    session.commit()
    return done


def _count(table, since: date | None):
    statement = select(func.count()).select_from(table)
    return statement if since is None else statement.where(table.day >= since)
