"""Pacing: a token bucket per sending number, refilled at the number's rate (80 messages a second by
default, NumberPacing up to 1,000), empty at first and holding at most a second's worth. A worker takes from it before
each batch; broadcasts from one number share its bucket. Kept in the worker's memory: each worker
paces itself, so with several workers give each a share (BROADCAST_RATE_SHARE).

``Yielding``: a worker process on cores shared with web processes pauses after a batch that spent much of
its time waiting for a CPU (BROADCAST_YIELD_SHARE)."""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Bucket:
    rate: float
    tokens: float
    at: float


class Pacing:
    def __init__(self, *, clock=time.monotonic, share: float = 1.0, enabled: bool = True):
        self.clock = clock
        self.share = share
        self.enabled = enabled
        self.buckets: dict[int, Bucket] = {}

    def take(self, number_pk: int, rate: int, wanted: int) -> int:
        """How many sends (at most ``wanted``) the number may make now at ``rate`` a second; taken."""
        if not self.enabled:
            return wanted
        rate = max(rate * self.share, 0.01)
        now = self.clock()
        bucket = self.buckets.get(number_pk)
        if bucket is None:
            # Empty at first: a broadcast starts at its rate, not with a second's burst on top of it.
            bucket = self.buckets[number_pk] = Bucket(rate, 0.0, now)
        bucket.tokens = min(max(rate, 1.0), bucket.tokens + (now - bucket.at) * rate)
        bucket.rate, bucket.at = rate, now
        granted = min(int(bucket.tokens), wanted)
        bucket.tokens -= granted
        return granted

    def wait(self, number_pk: int) -> float:
        """Seconds until the number's bucket holds a token again."""
        bucket = self.buckets.get(number_pk)
        if not self.enabled or bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) / bucket.rate


# Linux's scheduler statistics of the calling thread: time on a CPU, time ready to run but waiting for one (ns).
SCHEDSTAT = "/proc/thread-self/schedstat"
# The longest pause after one batch.
MAX_PAUSE = 1.0


class Yielding:
    """A worker stepping back for the processes that serve requests on the same cores. After each batch, the
    share of its wall time the worker's thread spent ready to run but waiting for a CPU (the kernel's
    schedstat) says whether others wanted the cores; past ``share``, the worker pauses as long as it waited
    (at most MAX_PAUSE), so the work it drives elsewhere (PostgreSQL's, WhatsApp's calls) steps back with it.
    Off with ``share`` 0, or where the kernel does not say."""

    def __init__(self, share: float, *, path: str = SCHEDSTAT, clock=time.monotonic, sleep=time.sleep):
        self.share = share
        self.path = path
        self.clock = clock
        self.sleep = sleep
        self.mark: tuple[float, float] | None = None   # (wall clock, time waited) at the last batch's end
        self.paused = 0.0

    def _waited(self) -> float | None:
        try:
            with open(self.path, encoding="ascii") as handle:
                return int(handle.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def after_batch(self) -> float:
        """Pause if the time since the last call was spent waiting for a CPU past ``share``; seconds paused."""
        waited = self._waited() if self.share > 0 else None
        if waited is None:
            return 0.0
        now, last = self.clock(), self.mark
        self.mark = (now, waited)
        if last is None or now <= last[0] or (waited - last[1]) / (now - last[0]) < self.share:
            return 0.0
        pause = min(waited - last[1], MAX_PAUSE)
        self.sleep(pause)
        self.paused += pause
        self.mark = (self.clock(), waited)
        return pause
