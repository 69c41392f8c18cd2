"""Engine behaviour per database: SQLite gets real transactions and savepoints."""
from __future__ import annotations

from sqlalchemy import event


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
