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


# A sliding window's count read and, when under the limit, taken, in one step: limits' own two scripts
# (sliding_window.lua, then acquire_sliding_window.lua) in one round trip, on the same keys. Returns
# [taken (0 or 1), previous count, its ms to live, current count, its ms to live], read before the take.
TAKE_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end
local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = math.max(0, tonumber(redis.call('pttl', KEYS[1])) or 0)
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = math.max(0, tonumber(redis.call('pttl', KEYS[2])) or 0)
local taken = 0
if previous_count * previous_ttl / expiry + current_count < limit then
    taken = 1
    if redis.call('exists', KEYS[2]) == 1 then
        redis.call('incrby', KEYS[2], 1)
    else
        redis.call('set', KEYS[2], 1, 'PX', expiry * 2)
    end
end
return {taken, previous_count, previous_ttl, current_count, current_ttl}
"""


def take_sliding_window_entry(storage: Storage, key: str, limit: int, expiry: int) -> tuple[bool, int, float, int, float]:
    """One count against a sliding window of ``limit`` per ``expiry`` seconds: (taken, previous count, its
    seconds to live, current count, its seconds to live), the counts as they were before this one. Taken when
    the weighted count is under ``limit``. One Redis round trip (FailoverStorage), else in memory."""
    own = getattr(storage, "take_sliding_window_entry", None)
    if own is not None:
        return own(key, limit, expiry)
    window = storage.get_sliding_window(key, expiry)
    previous, previous_ttl, current, _ = window
    used = previous * previous_ttl / expiry + current
    return (used < limit and storage.acquire_sliding_window_entry(key, limit, expiry, 1)), *window


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
        self._take_script = None

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

    def take_sliding_window_entry(self, key: str, limit: int, expiry: int) -> tuple[bool, int, float, int, float]:
        """``take_sliding_window_entry``: in one round trip to Redis (TAKE_SLIDING_WINDOW), in memory while
        Redis cannot be reached."""
        if self.outage.worth_trying():
            try:
                result = self._take_in_redis(key, limit, expiry)
            except self.primary.base_exceptions as exc:
                self.outage.failed(exc)
            else:
                self.outage.succeeded()
                return result
        return take_sliding_window_entry(self.local, key, limit, expiry)

    def _take_in_redis(self, key: str, limit: int, expiry: int) -> tuple[bool, int, float, int, float]:
        if self._take_script is None:
            self._take_script = self.primary.get_connection().register_script(TAKE_SLIDING_WINDOW)
        primary = self.primary
        keys = [primary.prefixed_key(primary._previous_window_key(key)),
                primary.prefixed_key(primary._current_window_key(key))]
        taken, previous, previous_ttl, current, current_ttl = self._take_script(keys, [limit, expiry])
        return bool(taken), int(previous), int(previous_ttl) / 1000, int(current), int(current_ttl) / 1000

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
