"""The plans' API rate limits: requests per minute per tenant, decided before anything is loaded.

A tenant past its limit can keep sending as fast as it likes; each refusal
must cost next to nothing, or one tenant's refusals slow every other tenant.
So the limit is decided from the API key's hash alone: the first request
with a key that passes authentication leaves, in this process, "this key's
hash -> its tenant and the plan's requests per minute" for
ACCESS_CACHE_SECONDS (``cache.cache_for("api_key_limits")``, emptied by any
commit here that changes a key, tenant, plan or subscription). Every later
request with that key is counted before the key, tenant or plan is looked
at, and a refusal is answered from there: no database query, one read of
the count (in memory, or one Redis round trip). A revoked key, a suspension
or a new plan therefore applies within ACCESS_CACHE_SECONDS, the bound every
access cache has: until then a revoked key over its limit gets 429, then 401.

The count is per tenant (every key of a tenant shares it) in a sliding
window of a minute, kept in the rate store (saas.rate_store: Redis with
REDIS_URL, counted in this process while Redis is unreachable).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from saas import cache
from saas.rate_store import take_sliding_window_entry

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class KeyLimit:
    """What a key's hash decides before anything loads: whose count, and how many a minute."""

    tenant_id: int
    per_minute: int


@dataclass(frozen=True)
class Allowance:
    """The count after this request: the headers every API answer carries, and whether it may go on."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when a place frees up

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.reset_at - now))

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(int(self.reset_at))}


class PlanLimits:
    """Counts each tenant's API requests against its plan's requests per minute."""

    def __init__(self, store, *, clock=time.time):
        self.store = store  # saas.rate_store.RateStore
        self.clock = clock

    def known(self, digest: str) -> KeyLimit | None:
        """What this process remembers of the key with this hash (None: not seen lately, load it)."""
        return cache.cache_for("api_key_limits").peek(digest)

    def remember(self, digest: str, tenant_id: int, per_minute: int) -> KeyLimit:
        """After a full authentication: later requests with this key are counted before anything loads."""
        limit = KeyLimit(tenant_id, per_minute)
        cache.cache_for("api_key_limits").put(digest, limit)
        return limit

    def take(self, limit: KeyLimit) -> Allowance | None:
        """Count one request of the tenant; ``allowed`` False when it is past its limit (then nothing is counted).

        The count is read and, under the limit, a place taken in one step (on Redis, one round trip).
        None when the store is turned off (tests).
        """
        if not self.store.enabled:
            return None
        key = f"api/tenant:{limit.tenant_id}/{limit.per_minute}/minute"
        taken, previous, previous_expires_in, current, current_expires_in = take_sliding_window_entry(
            self.store.storage, key, limit.per_minute, WINDOW_SECONDS)
        used = previous * previous_expires_in / WINDOW_SECONDS + current
        now = self.clock()
        reset_at = now + _next_place_in(previous, previous_expires_in, current, current_expires_in)
        if taken:
            return Allowance(True, limit.per_minute, max(0, limit.per_minute - math.floor(used) - 1), reset_at)
        return Allowance(False, limit.per_minute, 0, reset_at if reset_at > now else now + 1)


def _next_place_in(previous: int, previous_expires_in: float, current: int, current_expires_in: float) -> float:
    """Seconds until the sliding window's weighted count drops by one (``limits``' own reckoning)."""
    waits = []
    if previous:
        waits.append(previous_expires_in % (WINDOW_SECONDS / previous))
    if current:
        waits.append(current_expires_in % WINDOW_SECONDS)
    return min(waits) if waits else 0.0
