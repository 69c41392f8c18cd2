"""Whose CPU a send costs in the process: the request, and the work it leaves behind it.

A send's cost does not end with its answer: the background queue's jobs (the
sandbox's status walks, a key's last use) and the delivery of its domain events
to consumers (inbox, analytics, costs...) run after it, in this process's other
threads. ``Parts`` counts each thread's CPU (``time.thread_time``, so a thread
is never charged for another's work) and SQL statements to the part running:

- ``request``: what the sending threads do (``part("request")`` around each send);
- ``job <name>``: a batch of the background queue (saas.jobs.call_batch);
- ``events: claim, delete, commit``: delivering domain events (saas.events.deliver_streams),
  less what its consumers do, each counted as ``consumer <name>``.

A part nested in another (a walk's events delivered in the walk's thread) is
taken out of its parent's count. With ``profile`` each thread and part gets a
cProfile of its own (thread CPU), enabled while the thread runs that part (a
nested part's in place of its parent's); ``stats()`` merges them, or those of
the parts named.
"""
from __future__ import annotations

import cProfile
import functools
import pstats
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager

DELIVERY = "events: claim, delete, commit"


class Parts:
    def __init__(self, *, profile: bool = False):
        self.profile = profile
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.statements: Counter = Counter()
        self.profilers: list[tuple[str, cProfile.Profile]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def current(self) -> str:
        stack = getattr(self._local, "stack", None)
        return stack[-1][0] if stack else f"outside any part ({threading.current_thread().name})"

    @contextmanager
    def part(self, name: str):
        local = self._local
        if not hasattr(local, "stack"):
            local.stack, local.profilers = [], {}
        stack = local.stack
        profiler = self._profiler(local, name)
        if profiler is not None:
            if stack:
                self._profiler(local, stack[-1][0]).disable()
            profiler.enable()
        started = time.thread_time()
        stack.append([name, 0.0])
        try:
            yield
        finally:
            _, inner = stack.pop()
            spent = time.thread_time() - started
            with self._lock:
                self.cpu[name] += spent - inner
            if stack:
                stack[-1][1] += spent
            if profiler is not None:
                profiler.disable()
                if stack:
                    self._profiler(local, stack[-1][0]).enable()

    def _profiler(self, local, name: str) -> cProfile.Profile | None:
        if not self.profile:
            return None
        profiler = local.profilers.get(name)
        if profiler is None:
            profiler = local.profilers[name] = cProfile.Profile(time.thread_time)
            with self._lock:
                self.profilers.append((name, profiler))
        return profiler

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            with self.part(name):
                return fn(*args, **kwargs)
        return counted

    def install(self) -> None:
        """Count the background queue's batches, the delivery of domain events and each consumer (call it once
        the app is built: its consumers are registered)."""
        from saas import events, jobs

        call_batch = jobs.call_batch

        def counted_batch(path, batch):
            with self.part(f"job {path.rsplit('.', 1)[-1]}"):
                return call_batch(path, batch)

        jobs.call_batch = counted_batch
        events.deliver_streams = self.wrap(DELIVERY, events.deliver_streams)
        for consumer in events.consumers():
            events.subscribe(consumer.types, self.wrap(f"consumer {consumer.name}", consumer.handle),
                             name=consumer.name, serves=consumer.serves)

    def count_statement(self) -> None:
        name = self.current()
        with self._lock:
            self.statements[name] += 1

    def reset(self) -> None:
        with self._lock:
            self.cpu.clear()
            self.statements.clear()
            for _, profiler in self.profilers:
                profiler.clear()

    def stats(self, names=None) -> pstats.Stats | None:
        """The profiles of every part, or of the parts whose names contain one of ``names``, merged."""
        profilers = [p for name, p in self.profilers
                     if p.getstats() and (not names or any(n in name for n in names))]
        if not profilers:
            return None
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            stats.add(profiler)
        return stats

    def print_split(self, n: int, total_cpu: float) -> None:
        """CPU ms and statements per send by part, and what no part accounts for (thread switches, the
        interpreter's own threads, the profiler)."""
        counted = sum(self.cpu.values())
        print(f"  whole CPU per send by part (each thread's own CPU; {1000 * total_cpu / n:.2f} ms in the process):")
        names = sorted(set(self.cpu) | set(self.statements), key=lambda name: -self.cpu.get(name, 0.0))
        for name in names:
            print(f"    {name:44s} {1000 * self.cpu.get(name, 0.0) / n:6.3f} ms  {self.statements[name] / n:5.2f} "
                  f"statements")
        print(f"    {'not in any part':44s} {1000 * (total_cpu - counted) / n:6.3f} ms")
