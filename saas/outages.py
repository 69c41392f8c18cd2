"""What a process does while Redis cannot be reached: carry on without it, say so once, try again now and then.

Redis holds only what can be rebuilt or done another way: rate-limit counts
(counted in this process meanwhile, saas.rate_store) and the RQ queue
(follow-up jobs run in this process meanwhile, saas.jobs). No request waits
for Redis to come back, and no request fails because it is gone.

Each use of Redis has an ``Outage``: the first failure logs one warning and
starts the outage; while it lasts, Redis is tried again at most once every
``retry_every`` seconds (one caller tries, the others use the fallback); the
first success ends it with one more line. Per process: each web worker
notices on its own.
"""
from __future__ import annotations

import logging
import threading
import time

from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# How long a web process waits for Redis: connecting (a stopped server refuses at once; these bound a
# host that does not answer at all), and for one command's reply.
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0


def redis_client_options(tls_options: dict) -> dict:
    """redis-py options for a web process's connections: bounded waits, and one immediate retry.

    redis-py retries a failed command ten times with backoff by default (seconds in all); here a
    command is tried once more at once, on a new connection (what a pooled connection that the
    server closed while idle needs), and then an Outage decides, so no request waits out backoff.
    """
    return {**tls_options, "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": COMMAND_TIMEOUT_SECONDS, "retry": Retry(NoBackoff(), 1)}


class Outage:
    """One use of Redis in this process: up, or down since when, and when to try it again."""

    def __init__(self, what: str, meanwhile: str, *, retry_every: float = 1.0, clock=time.monotonic):
        self.what = what            # "rate-limit counts in Redis"
        self.meanwhile = meanwhile  # "counted in this process until it is back"
        self.retry_every = retry_every
        self.clock = clock
        self.down_since: float | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def worth_trying(self) -> bool:
        """True unless an outage is on and its next try is not due (then this caller is the one that tries)."""
        if self.down_since is None:
            return True
        now = self.clock()
        with self._lock:
            if now < self._next_try:
                return False
            self._next_try = now + self.retry_every
            return True

    def failed(self, error: BaseException) -> None:
        """Redis failed this caller: start the outage (one warning) or push the next try back."""
        with self._lock:
            now = self.clock()
            self._next_try = now + self.retry_every
            if self.down_since is not None:
                return
            self.down_since = now
        log.warning("Redis unreachable: %s are %s (%s: %s)", self.what, self.meanwhile, type(error).__name__, error)

    def succeeded(self) -> None:
        """Redis answered: end the outage, if there was one (one line)."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            lasted, self.down_since = self.clock() - self.down_since, None
        log.warning("Redis reachable again after %.1f s: %s use it again", lasted, self.what)
