"""The rate-limit store fails over: while its Redis is down, counts are kept in this process and one warning
says so; when Redis is back, the counts are Redis's again. A real redis-server of the test's own, stopped and
started on its port."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from saas.outages import Outage, redis_client_options
from saas.rate_store import FailoverStorage, LocalCounts, take_sliding_window_entry
from tests.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def failover(url: str, clock) -> FailoverStorage:
    primary = storage_from_string(url, **redis_client_options({}))
    return FailoverStorage(primary, Outage("rate-limit counts", "kept in this process's memory", clock=clock))


def test_counts_move_to_memory_while_redis_is_down_and_back_when_it_returns(redis_server, caplog):
    clock = Clock()
    first, second = failover(redis_server.url, clock), failover(redis_server.url, clock)
    three = RateLimitItemPerMinute(3)
    limiter_a, limiter_b = SlidingWindowCounterRateLimiter(first), SlidingWindowCounterRateLimiter(second)
    # Two processes share Redis's count.
    assert [limiter_a.hit(three, "api", "t1"), limiter_b.hit(three, "api", "t1")] == [True, True]
    assert limiter_a.hit(three, "api", "t1") is True
    assert limiter_b.hit(three, "api", "t1") is False

    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="saas.outages"):
        # Each process counts on its own now: never an error, never open.
        assert [limiter_a.hit(three, "api", "t1") for _ in range(4)] == [True, True, True, False]
        moving = MovingWindowRateLimiter(first)
        assert [moving.hit(three, "login", "x") for _ in range(4)] == [True, True, True, False]
        clock.now += 0.5  # not yet time to try Redis again
        assert limiter_a.hit(three, "api", "t2") is True
        for _ in range(3):  # tried again each second, still down: still one outage
            clock.now += 1.0
            assert limiter_a.hit(three, "api", "t3") is True
    assert [r.getMessage() for r in caplog.records].count(
        "Redis unreachable: rate-limit counts are kept in this process's memory "
        f"(ConnectionError: Error 111 connecting to 127.0.0.1:{redis_server.port}. Connection refused.)") == 1
    assert first.outage.down

    redis_server.start()
    clock.now += 1.0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="saas.outages"):
        assert limiter_a.hit(three, "api", "t1") is True  # Redis's count, started afresh by the restart
        assert limiter_b.hit(three, "api", "t1") is True
    assert not first.outage.down
    assert any("Redis reachable again" in r.getMessage() for r in caplog.records)
    assert [limiter_a.hit(three, "api", "t1"), limiter_b.hit(three, "api", "t1")] == [True, False]


def test_while_down_redis_is_tried_again_once_a_second_not_on_every_count(redis_server):
    clock = Clock()
    store = failover(redis_server.url, clock)
    redis_server.stop()
    tries = []
    real = store.primary.incr

    def counted(*args):
        tries.append(args)
        return real(*args)

    store.primary.incr = counted
    for _ in range(50):
        store.incr("k", 60)
    assert len(tries) == 1
    clock.now += 1.0
    for _ in range(50):
        store.incr("k", 60)
    assert len(tries) == 2


def timers() -> int:
    return sum(isinstance(thread, threading.Timer) for thread in threading.enumerate())


@pytest.mark.parametrize("strategy", [SlidingWindowCounterRateLimiter, MovingWindowRateLimiter])
def test_counting_in_memory_starts_no_thread_and_still_forgets_stale_keys(strategy):
    counts = LocalCounts()
    limiter = strategy(counts)
    every_second = RateLimitItemPerMinute(1000)
    time.sleep(0.02)  # the timer limits' constructor starts (cancelled) is gone
    before = timers()
    for _ in range(3):
        assert limiter.hit(every_second, "tenant", "1")
        assert timers() == before
        time.sleep(0.02)  # past limits' 10 ms timer: it would start a thread for the next count
    # Stale keys are swept by a later count, at most once a SWEEP_SECONDS.
    counts.SWEEP_SECONDS = counts._next_sweep = 0.0
    counts.incr("stale", 0.01)
    time.sleep(0.05)
    counts.incr("fresh", 60)
    assert "stale" not in counts.storage and "fresh" in counts.storage
    assert limiter.get_window_stats(every_second, "tenant", "1").remaining == 997


def test_a_count_is_read_and_taken_in_one_redis_round_trip_on_limits_own_keys(redis_server):
    clock = Clock()
    store, other = failover(redis_server.url, clock), failover(redis_server.url, clock)
    client = store.primary.get_connection()
    take_sliding_window_entry(store, "warm", 3, 60)  # the script is loaded by the first count

    def scripts_run() -> int:
        return client.info("commandstats")["cmdstat_evalsha"]["calls"]
    before = scripts_run()
    first = take_sliding_window_entry(store, "api/t1", 3, 60)
    assert scripts_run() - before == 1  # reading then taking with limits' own scripts runs two
    assert first[0] is True and first[1:4:2] == (0, 0)
    # The same keys limits' own sliding window reads and counts: shared with other processes and with limits.
    assert take_sliding_window_entry(other, "api/t1", 3, 60)[0] is True
    assert store.get_sliding_window("api/t1", 60)[2] == 2
    assert store.acquire_sliding_window_entry("api/t1", 3, 60, 1) is True
    refused = take_sliding_window_entry(store, "api/t1", 3, 60)
    assert refused[0] is False and refused[3] == 3
    assert store.get_sliding_window("api/t1", 60)[2] == 3  # a refusal takes nothing
    # Redis gone: counted in this process's memory, the same way.
    redis_server.stop()
    assert [take_sliding_window_entry(store, "api/t1", 2, 60)[0] for _ in range(3)] == [True, True, False]
    assert store.outage.down
