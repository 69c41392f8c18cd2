"""Engine behaviour per database: SQLite gets real transactions and savepoints; steps retried on a
new connection when the database dropped one or could not be reached for a moment."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError

from saas.errors import ApiError

log = logging.getLogger(__name__)


class DatabaseUnavailable(ApiError):
    """The database could not be reached for longer than a request waits; nothing half-done was kept."""

    status = 503
    code = "service_unavailable"
    graph_code = 5031
    message = "The service is briefly unavailable; try again in a few seconds."

    def __init__(self, message: str | None = None, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(message, **kwargs)


def init_app(app) -> None:
    from saas.extensions import db

    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)


def _sqlite_transactions(engine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and starts writes
    # lazily, so two writers can deadlock; take the write lock at BEGIN and
    # let SQLAlchemy issue every statement itself.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def single_statement(session) -> dict:
    """Execution options for a transaction of one statement: on PostgreSQL no BEGIN and COMMIT
    round trips (the statement commits by itself); SQLite keeps its write lock taken at BEGIN."""
    if session.get_bind().dialect.name == "postgresql" and not _in_transaction(session):
        return {"isolation_level": "AUTOCOMMIT"}
    return {}


def _in_transaction(session) -> bool:
    # A scoped session proxies the session of this context; in_transaction is not proxied.
    inner = session.registry() if hasattr(session, "registry") else session
    return inner.in_transaction()


# What a step may meet when the server went away, restarted or failed over: the connection
# was closed under it, a new one could not be opened, or the session still holds the
# transaction that failed on the dropped connection.
DROPPED = (OperationalError, InterfaceError, PendingRollbackError)


def dropped(exc: BaseException) -> bool:
    """Whether ``exc`` says the database connection was lost or could not be made (not a bad statement)."""
    if isinstance(exc, DROPPED):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(frozen=True)
class Reconnecting:
    """Runs a step again on a new connection when the database dropped it, for a bounded time.

    ``tries`` more tries after the first and ``seconds`` in all, whichever ends
    first (DATABASE_RETRIES, DATABASE_RETRY_SECONDS); waits double from 50 ms,
    at most a second. Only for steps that are safe to run twice: each begins
    and ends its own transaction, and a transaction that did not commit left
    nothing behind.
    """

    tries: int = 5
    seconds: float = 5.0
    sleep: object = field(default=time.sleep, compare=False)
    clock: object = field(default=time.monotonic, compare=False)

    @classmethod
    def from_config(cls, config) -> "Reconnecting":
        return cls(tries=config.get("DATABASE_RETRIES", 5), seconds=config.get("DATABASE_RETRY_SECONDS", 5.0))

    def run(self, session, work):
        """``work()``'s result; DatabaseUnavailable (a 503) when the database stayed out of reach."""
        deadline = self.clock() + self.seconds
        for attempt in range(self.tries + 1):
            try:
                return work()
            except Exception as exc:
                if not dropped(exc):
                    raise
                # The transaction on the dead connection is gone: forget it, and let the
                # pool hand out a new connection.
                _forget(session)
                wait = min(0.05 * (2 ** attempt), 1.0)
                if attempt == self.tries or self.clock() + wait > deadline:
                    log.error("the database stayed unreachable", extra={"error": type(exc).__name__})
                    raise DatabaseUnavailable() from exc
                log.warning("database connection lost; trying again on a new one",
                            extra={"error": type(exc).__name__, "attempt": attempt + 1})
                self.sleep(wait)
        raise AssertionError("unreachable")


def _forget(session) -> None:
    try:
        session.rollback()
    except Exception:
        # Rolling back over a dead connection can fail too; the session is reset either way.
        log.debug("rollback after a lost connection failed", exc_info=True)


def unreachable_answer(exc: BaseException):
    """The answer to a request the database failed under (saas.error_handlers' last handler): 503, never 500."""
    from flask import Response, g

    from saas.error_handlers import render_api_error, wants_json
    from saas.extensions import db

    log.warning("database unreachable", extra={"error": type(exc).__name__})
    _forget(db.session)
    if wants_json():
        return render_api_error(DatabaseUnavailable())
    # Plain text: the page layout itself reads the database.
    g.retry_after = "5"
    return Response("503 Service Unavailable: try again in a few seconds.\n", 503, mimetype="text/plain")


def insert_for(conn, model):
    """The dialect's own INSERT for ``model`` (ON CONFLICT and RETURNING where the database has them)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(model)
