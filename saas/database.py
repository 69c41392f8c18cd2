"""Engine behaviour per database: SQLite gets real transactions and savepoints; steps retried on a
new connection when the database dropped one or could not be reached for a moment."""
from __future__ import annotations

import functools
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import has_app_context
from sqlalchemy import JSON, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import scoped_session, sessionmaker
from sqlalchemy.types import NullType
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


def insert_many(conn, table, rows: list[dict], *, returning: tuple[str, ...] = (),
                conflict: tuple[str, ...] = (), add: tuple[str, ...] = (), replace: tuple[str, ...] = (),
                skip_conflicts: bool = False) -> list:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in set-based statements; the RETURNING
    rows in the order of ``rows`` (less any left out by ``conflict``: ON CONFLICT (those columns) DO NOTHING).

    With ``add`` or ``replace`` (an upsert), a row whose ``conflict`` key is stored updates the stored row
    instead: each ``add`` column gets the row's value added to it, each ``replace`` column the row's value.
    No two rows may then share a key (PostgreSQL updates a row once per statement). ``skip_conflicts``:
    ON CONFLICT DO NOTHING on any unique key.

    On PostgreSQL one ``INSERT ... SELECT ... FROM unnest(...)``, each column's values in one array: a
    short statement whatever the count, where a multi-row VALUES list of thousands of parameters costs
    the driver more to prepare than the database to run (a JSON column's values go as their text, cast
    to JSON[]). Rows are inserted in order, so identity ids
    are handed out in order (what SQLAlchemy's own sorted multi-row inserts rely on). Elsewhere
    SQLAlchemy's multi-row INSERTs (insertmanyvalues).
    """
    if not rows:
        return []
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        conflict = conflict or (("*",) if skip_conflicts else ())
        result = conn.execute(_unnest_insert(conn.dialect, table, columns, returning, conflict, add, replace),
                              {name: _array(table.c[name], [row[name] for row in rows]) for name in columns})
        return result.all() if returning else []
    statement = sqlite.insert(table)
    if add or replace:
        statement = statement.on_conflict_do_update(index_elements=list(conflict), set_={
            **{name: table.c[name] + statement.excluded[name] for name in add},
            **{name: statement.excluded[name] for name in replace}})
    elif conflict or skip_conflicts:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict) or None)
    if not returning:
        conn.execute(statement, rows)
        return []
    statement = statement.returning(*(table.c[name] for name in returning),
                                    sort_by_parameter_order=not (conflict or skip_conflicts))
    return conn.execute(statement, rows).all()


def among(conn, column, values):
    """``column`` IN ``values``: one array parameter on PostgreSQL (a statement of thousands of parameters costs
    the driver more to build than the database to run), a plain IN elsewhere."""
    dialect = conn.dialect if hasattr(conn, "dialect") else conn.get_bind().dialect  # a connection or a session
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type), unique=True))
    return column.in_(list(values))


def among_bound(conn, column, name: str):
    """``column`` IN the values bound as ``name`` when the statement runs (a statement built once): one array
    parameter on PostgreSQL, as ``among``, an expanding IN elsewhere."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def _array(column, values: list) -> list:
    """A column's values as the driver passes them in an array: JSON ones as their text (cast to JSON[])."""
    if isinstance(column.type, JSON):
        return [None if value is None else json.dumps(value) for value in values]
    return values


@functools.lru_cache(maxsize=64)
def _unnest_insert(dialect, table, columns: tuple, returning: tuple, conflict: tuple, add: tuple = (),
                   replace: tuple = ()):
    def array_type(name: str) -> str:
        column = table.c[name]
        type_ = column.type
        if isinstance(type_, NullType):  # a foreign key's type is its target's
            type_ = next(iter(column.foreign_keys)).column.type
        return type_.compile(dialect=dialect)

    arrays = ", ".join(f"CAST(:{name} AS {array_type(name)}[])" for name in columns)
    names = ", ".join(columns)
    sql = (f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays}) WITH ORDINALITY "
           f"AS v({names}, ordinal) ORDER BY ordinal")
    if add or replace:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET " + ", ".join(
            [f"{name} = {table.name}.{name} + excluded.{name}" for name in add]
            + [f"{name} = excluded.{name}" for name in replace])
    elif conflict == ("*",):
        sql += " ON CONFLICT DO NOTHING"
    elif conflict:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return text(sql)


def end_transaction(session) -> None:
    """Roll back what ``session`` still has open (a read before a refusal): no connection stays checked
    out, and on SQLite no write lock (taken at BEGIN) stays held. Never raises (it ends work that may
    be raising already); a connection that died is reset all the same."""
    try:
        if _in_transaction(session):
            session.rollback()
    except Exception:
        log.debug("rollback at the end of a unit of work failed", exc_info=True)


@contextmanager
def reading(session):
    """Around reads in ``session``: a transaction they begin (none was open) is ended after them, so no
    connection stays checked out and on SQLite no write lock (taken at BEGIN) stays held; one already
    open is left as it was. Only for reads: what the block began is rolled back."""
    began = not _in_transaction(session)
    try:
        yield
    finally:
        if began:
            end_transaction(session)


class AppSessions:
    """The scoped session a service is given, for callers with or without an app context.

    Inside an app context it is Flask-SQLAlchemy's session of that context, so
    a request's reads and its service's writes share one transaction's
    connection (and SQLite's one writer). Elsewhere (a worker thread, a plain
    function) it is a session per thread of its own, on the same engine.
    """

    def __init__(self, app_session, engine):
        self.app_session = app_session
        self.own = scoped_session(sessionmaker(bind=engine))

    def current(self):
        return self.app_session if has_app_context() else self.own

    def __getattr__(self, name):
        return getattr(self.current(), name)


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


_BUILT: dict[tuple[str, str], object] = {}


def built_once(conn, name: str, build):
    """The statement ``build(conn)`` makes, built once per dialect and kept under ``name``: a statement on a
    hot path is built with bind parameters and reused, since building one and working out its cache key
    costs more than running it."""
    key = (conn.dialect.name, name)
    statement = _BUILT.get(key)
    if statement is None:
        statement = _BUILT[key] = build(conn)
    return statement
