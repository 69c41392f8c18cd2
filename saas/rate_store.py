"""Where rate-limit counts are kept: Redis with REDIS_URL (shared by every process), else this process's memory.

One store per app, used through the ``limits`` library by everything that
counts: the plans' API limits (saas.api.plan_limits), the login and signup
throttles (saas.tenants.login_attempts) and WhatsApp's pair rate
(saas.messaging.outbound.rules). ``saas.extensions.limiter`` is the unbound store the
factory binds.

Rate limits fail over, never closed and never with an error: while Redis
cannot be reached the counts are kept in this process's memory (each process
counts on its own, as without REDIS_URL), one warning is logged per outage,
and Redis is tried again about once a second (saas.outages).
"""
from __future__ import annotations

import time

from limits.storage import MemoryStorage, MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.storage import storage_from_string

from saas.outages import Outage, redis_client_options


class LocalCounts(MemoryStorage):
    """``limits``' in-memory storage, its stale keys swept as it counts (at most once a second) instead of
    by a timer thread started again after every 10 ms without a count.

    A count reads its own keys' expiry either way; the sweep only bounds memory. The timer cost a thread
    (under gevent a greenlet and its locks) on every API request that came more than 10 ms after the last:
    about a tenth of a send's CPU. Keeps to limits 5.8's private names (requirements.txt pins it;
    tests/test_rate_store.py fails if they change).
    """

    SWEEP_SECONDS = 1.0

    def __init__(self):
        super().__init__()
        self.timer.cancel()
        self._next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802  (the name limits calls)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()


class FailoverStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport):
    """A ``limits`` storage: the primary (Redis) while it answers, this process's memory while it does not."""

    STORAGE_SCHEME = None  # built here, never from a URI

    def __init__(self, primary: Storage, outage: Outage):
        super().__init__()
        self.primary = primary
        self.local = LocalCounts()
        self.outage = outage

    @property
    def base_exceptions(self):
        return ()  # nothing escapes: a failure of the primary is answered from memory

    def _count(self, method: str, *args):
        if self.outage.worth_trying():
            try:
                result = getattr(self.primary, method)(*args)
            except self.primary.base_exceptions as exc:
                self.outage.failed(exc)
            else:
                self.outage.succeeded()
                return result
        return getattr(self.local, method)(*args)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._count("incr", key, expiry, amount)

    def get(self, key: str) -> int:
        return self._count("get", key)

    def get_expiry(self, key: str) -> float:
        return self._count("get_expiry", key)

    def clear(self, key: str) -> None:
        return self._count("clear", key)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return self._count("acquire_entry", key, limit, expiry, amount)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return self._count("get_moving_window", key, limit, expiry)

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return self._count("acquire_sliding_window_entry", key, limit, expiry, amount)

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._count("get_sliding_window", key, expiry)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        return self._count("clear_sliding_window", key, expiry)

    def check(self) -> bool:
        return self.primary.check()

    def reset(self) -> int | None:
        self.local.reset()
        return self._count("reset")


class RateStore:
    """The app's rate-limit store (an extension object: ``init_app`` binds it, like Flask's)."""

    def __init__(self):
        self._storage: Storage | None = None
        # Off only in tests that need every request through (schemathesis); the plan limits honour it.
        self.enabled = True

    def init_app(self, app) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            primary = storage_from_string(url, **redis_client_options(app.config.get("REDIS_OPTIONS", {})))
            storage = FailoverStorage(primary, Outage("rate-limit counts", "kept in this process's memory"))
        else:
            storage = LocalCounts()
        self._storage = storage
        app.extensions["rate_store"] = storage
        # tests/conftest.py empties every app's stores between tests through this set.
        app.extensions.setdefault("limiter", set()).add(self)

    @property
    def storage(self) -> Storage:
        """The current app's storage (the last app built, outside an app context)."""
        from flask import current_app, has_app_context

        if has_app_context() and "rate_store" in current_app.extensions:
            return current_app.extensions["rate_store"]
        assert self._storage is not None, "RateStore.init_app was not called"
        return self._storage

    def reset(self) -> None:
        self.storage.reset()
