"""Pacing: a token bucket per sending number, refilled at the number's rate (80 messages a second by
default, NumberPacing up to 1,000), empty at first and holding at most a second's worth. A worker takes from it before
each batch; broadcasts from one number share its bucket. Kept in the worker's memory: each worker
paces itself, so with several workers give each a share (BROADCAST_RATE_SHARE)."""
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
