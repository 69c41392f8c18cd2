"""Counting the SQL a piece of work runs: ``with statements_on(app, pattern) as seen:`` collects the text of
every statement the app's engine runs meanwhile whose text ``pattern`` (a regex) finds."""
from __future__ import annotations

import re
from contextlib import contextmanager

from sqlalchemy import event

from saas.extensions import db


@contextmanager
def statements_on(app, pattern: str):
    found = re.compile(pattern)
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        if found.search(statement):
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)
