"""Per-process snapshots of the rows that decide access (keys, tenants, plans, numbers).

Each entry lives for ``ttl`` seconds. Every commit in this process that
changes one of the watched models empties every cache at once, so a change
made here is seen here at the next request; other processes see it when
their entry expires, so ``ttl`` is the bound on how long a revoked key or a
changed plan can still be honoured anywhere.
"""
from __future__ import annotations

import threading
import time
import weakref

from sqlalchemy import event
from sqlalchemy.orm import Session

_caches: "weakref.WeakSet[SnapshotCache]" = weakref.WeakSet()
_watched: set[type] = set()


class SnapshotCache:
    """A dict of values that expire; values must be immutable snapshots, never ORM rows."""

    def __init__(self, ttl: float, *, clock=time.monotonic, max_entries: int = 100_000):
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict = {}
        self._lock = threading.Lock()
        _caches.add(self)

    def get(self, key, load):
        """The cached value for ``key``, or ``load()``'s (cached unless it is None)."""
        entry = self._entries.get(key)
        now = self.clock()
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if value is not None:
            self.put(key, value, now=now)
        return value

    def peek(self, key):
        """The cached value for ``key`` while it lives, else None; loads nothing."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        return None

    def put(self, key, value, *, now: float | None = None) -> None:
        """Keep ``value`` for ``key`` for ``ttl`` seconds from now."""
        expires = (self.clock() if now is None else now) + self.ttl
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (expires, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def clear_all() -> None:
    for cache in list(_caches):
        cache.clear()


def watch(*models: type) -> None:
    """Empty every cache after any commit that wrote a row of these models."""
    _watched.update(models)


@event.listens_for(Session, "after_flush")
def _note_access_changes(session, flush_context):
    for row in (*session.new, *session.dirty, *session.deleted):
        if type(row) in _watched:
            session.info["access_changed"] = True
            return


@event.listens_for(Session, "after_commit")
def _clear_after_commit(session):
    if session.info.pop("access_changed", False):
        clear_all()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session):
    session.info.pop("access_changed", None)


def cache_for(name: str) -> SnapshotCache:
    """This app's cache called ``name`` (ACCESS_CACHE_SECONDS long), made on first use."""
    from flask import current_app

    return _cache_of(current_app, name)


def _cache_of(app, name: str) -> SnapshotCache:
    caches = app.extensions.setdefault("snapshot_caches", {})
    cache = caches.get(name)
    if cache is None:
        cache = caches[name] = SnapshotCache(app.config.get("ACCESS_CACHE_SECONDS", 5.0))
    return cache


class Caches:
    """An app's snapshot caches by name, for code that runs with no app context (the send service's
    collaborators): ``caches(name)`` is the very cache ``cache_for(name)`` gives in that app's context."""

    def __init__(self, app):
        self.app = app

    def __call__(self, name: str) -> SnapshotCache:
        return _cache_of(self.app, name)
