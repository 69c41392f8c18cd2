"""The outbox of domain events (saas.events): its table, and handing what it holds to consumers.

An event row lives until every consumer of its type has taken it: then it is
deleted, in the transaction that handed it over, so what a consumer writes on
the connection it is given commits exactly when the event leaves the outbox.

Delivering is one transaction: claim rows (locked with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so processes delivering at once never take the same
row; SQLite takes its write lock at BEGIN), keep only those that are ready,
call each consumer with the events it is owed, delete them, commit. An event
is ready when no earlier event of its stream is still in the outbox other
than those claimed with it: a stream's events leave in id order whoever
delivers them. When a consumer raises, the transaction is rolled back and the
events are delivered again one at a time, each in a savepoint: an event that
fails is kept for that consumer (``owed``) and tried again after a backoff,
and the later events of its stream wait for it. After MAX_ATTEMPTS it is dead:
kept for operators, and no longer holding up its stream.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    JSON, DateTime, ForeignKey, Index, Integer, String, any_, bindparam, delete, exists, func, or_, select, update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, aliased, mapped_column

from saas.database import among_bound, built_once
from saas.extensions import db
from saas.ids import BigId

log = logging.getLogger(__name__)

# Waits before the tries after a failure; the try after the last wait is the last one.
RETRY_SECONDS = (5, 30, 120, 600, 1800, 3600, 3600, 3600, 3600)
MAX_ATTEMPTS = len(RETRY_SECONDS) + 1
ERROR_LENGTH = 1000
STREAM_LENGTH = 200


@dataclass(frozen=True)
class Event:
    """Something that happened to a tenant's data, as consumers read it: its ``type``, the ``stream`` it is
    ordered in and its ``payload`` (JSON); ``id`` (never reused: deduplicate on it) and ``created_at`` once
    written."""

    type: str
    tenant_id: int
    stream: str
    payload: dict
    id: int | None = None
    created_at: datetime | None = None


class OutboxEvent(db.Model):
    """A domain event not yet taken by every consumer of its type (saas.events)."""

    __tablename__ = "domain_events"
    __table_args__ = (
        # A stream's earlier events: what decides whether an event is ready.
        Index("ix_domain_events_stream", "stream", "id"),
        # Ids are never reused (SQLite would reuse a deleted highest one): consumers deduplicate on them.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(60))
    # What orders it: its events leave in id order (a conversation, a template, a number).
    stream: Mapped[str] = mapped_column(String(STREAM_LENGTH))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The consumers that still owe it, comma-separated, once one has failed; NULL: every consumer of its type.
    owed: Mapped[str | None] = mapped_column(String(1000))
    last_error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH))
    dead_at: Mapped[datetime | None] = mapped_column(DateTime)


_TABLE = OutboxEvent.__table__
_CLAIMED = (OutboxEvent.id, OutboxEvent.tenant_id, OutboxEvent.type, OutboxEvent.stream, OutboxEvent.payload,
            OutboxEvent.created_at, OutboxEvent.owed, OutboxEvent.attempts)


def _among(conn, column, values: list):
    """``column`` IN ``values``: one array parameter on PostgreSQL (a statement of thousands of parameters
    costs more to build and plan than to run), a plain IN elsewhere."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type), unique=True))
    return column.in_(values)


def write(conn, events, now: datetime) -> None:
    """Insert ``events`` (Event) in the caller's transaction, ids in list order: one executemany (pipelined
    on PostgreSQL: one round trip, measured faster here than one multi-row INSERT of as many rows)."""
    conn.execute(_TABLE.insert(), [
        {"tenant_id": e.tenant_id, "type": e.type, "stream": e.stream[:STREAM_LENGTH], "payload": e.payload,
         "created_at": now, "attempts": 0} for e in events])


def _due(now: datetime):
    return or_(OutboxEvent.next_try_at.is_(None), OutboxEvent.next_try_at <= now)


def in_streams(streams: list[str], *, limit: int):
    """A claim of the due events of ``streams`` (what a transaction just published, and any left before
    them) that are ready."""
    def claim(conn, now):
        statement = built_once(conn, f"outbox.claim.{limit}", lambda conn: (
            select(*_CLAIMED).where(among_bound(conn, OutboxEvent.stream, "streams"), OutboxEvent.dead_at.is_(None),
                                    _due(bindparam("now")))
            .order_by(OutboxEvent.id).limit(limit).with_for_update(skip_locked=True)))
        return _ready(conn, conn.execute(statement, {"streams": streams, "now": now}).all())
    return claim


def left_over(*, cutoff: datetime, limit: int):
    """A claim of the due events written before ``cutoff`` whose stream waits on no failed event's backoff,
    and that are ready."""
    def claim(conn, now):
        earlier = aliased(OutboxEvent)
        waiting = exists().where(earlier.stream == OutboxEvent.stream, earlier.id < OutboxEvent.id,
                                 earlier.dead_at.is_(None), earlier.next_try_at > now)
        return _ready(conn, conn.execute(
            select(*_CLAIMED).where(OutboxEvent.dead_at.is_(None), OutboxEvent.created_at <= cutoff, _due(now),
                                    ~waiting)
            .order_by(OutboxEvent.id).limit(limit).with_for_update(skip_locked=True)).all())
    return claim


def _ready(conn, rows) -> list:
    """The claimed rows no unclaimed earlier event of their stream holds back (one is pending, failed or
    claimed by another process), in id order."""
    if not rows:
        return []
    statement = built_once(conn, "outbox.first_other", lambda conn: (
        select(OutboxEvent.stream, func.min(OutboxEvent.id))
        .where(among_bound(conn, OutboxEvent.stream, "streams"), OutboxEvent.dead_at.is_(None),
               ~among_bound(conn, OutboxEvent.id, "ids"))
        .group_by(OutboxEvent.stream)))
    first_other = dict(conn.execute(statement, {"streams": sorted({row.stream for row in rows}),
                                                "ids": [row.id for row in rows]}).all())
    return [row for row in rows if first_other.get(row.stream) is None or row.id < first_other[row.stream]]


def _owed(consumers, rows):
    """(consumer, its rows) for each consumer owed any of ``rows``."""
    for consumer in consumers:
        owed = [row for row in rows if row.type in consumer.types
                and (row.owed is None or consumer.name in row.owed.split(","))]
        if owed:
            yield consumer, owed


def _event(row) -> Event:
    return Event(row.type, row.tenant_id, row.stream, row.payload, id=row.id, created_at=row.created_at)


def error_text(exc: BaseException) -> str:
    words = str(exc).split("\n[SQL:", 1)[0]
    return f"{type(exc).__name__}: {words}"[:ERROR_LENGTH]


def deliver(session, consumers, claim, now: datetime) -> int:
    """Claim events (``claim(conn, now)``), hand the ready ones to ``consumers``, delete them. Commits.

    All together when every consumer takes its events; when one raises, again
    one event at a time (``_one_by_one``). Returns how many events left the
    outbox. Raises only what the database raises.
    """
    try:
        conn = session.connection()
        rows = claim(conn, now)
        if not rows:
            session.rollback()
            return 0
        for consumer, owed in _owed(consumers, rows):
            consumer.handle(conn, [_event(row) for row in owed])
        conn.execute(built_once(conn, "outbox.delete", lambda conn: delete(OutboxEvent).where(
            among_bound(conn, OutboxEvent.id, "ids"))), {"ids": [row.id for row in rows]})
        session.commit()
        return len(rows)
    except Exception as exc:
        session.rollback()
        log.warning("domain events did not deliver together (%s); delivering each alone", error_text(exc))
    return _one_by_one(session, consumers, claim, now)


def _one_by_one(session, consumers, claim, now: datetime) -> int:
    """``deliver``, each event to each consumer in a savepoint of its own. Commits."""
    try:
        conn = session.connection()
        rows = claim(conn, now)
        owing: dict[int, list[str]] = {}
        errors: dict[int, str] = {}
        for consumer, owed in _owed(consumers, rows):
            stopped = set()  # streams where this consumer failed: their later events wait
            for row in owed:
                if row.stream not in stopped:
                    try:
                        with session.begin_nested():
                            consumer.handle(session.connection(), [_event(row)])
                        continue
                    except Exception as exc:
                        log.warning("consumer %s failed on event %s", consumer.name, row.id, exc_info=True)
                        errors.setdefault(row.id, f"{consumer.name}: {error_text(exc)}"[:ERROR_LENGTH])
                        stopped.add(row.stream)
                owing.setdefault(row.id, []).append(consumer.name)
        conn.execute(delete(OutboxEvent).where(_among(conn, OutboxEvent.id, [r.id for r in rows if r.id not in owing])))
        _keep(conn, [row for row in rows if row.id in owing], owing, errors, now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(rows) - len(owing)


def _keep(conn, rows, owing: dict[int, list[str]], errors: dict[int, str], now: datetime) -> None:
    """Keep events some consumer still owes: a failed one tried again after its backoff (or dead after the
    last try), one that waited behind it as it was."""
    for row in rows:
        values = {"owed": ",".join(owing[row.id])}
        if row.id in errors:
            attempts = row.attempts + 1
            values.update(attempts=attempts, last_error=errors[row.id],
                          next_try_at=now + timedelta(seconds=RETRY_SECONDS[min(attempts, MAX_ATTEMPTS - 1) - 1]))
            if attempts >= MAX_ATTEMPTS:
                values["dead_at"] = now
                log.error("domain event %s (%s) is dead after %d tries: %s", row.id, row.type, attempts,
                          errors[row.id])
        conn.execute(update(OutboxEvent).where(OutboxEvent.id == row.id).values(**values))


def dead(session, *, limit: int = 100) -> list[OutboxEvent]:
    """Events given up on after MAX_ATTEMPTS failures, oldest first, for operators."""
    return list(session.scalars(select(OutboxEvent).where(OutboxEvent.dead_at.is_not(None))
                                .order_by(OutboxEvent.id).limit(limit)))
