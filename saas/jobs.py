"""Follow-up work that runs after the response, and the housekeeping every process does.

``enqueue(path, *args)`` hands a job to this process's background queue and
returns at once. A thread drains the queue: jobs whose function has a
``batch`` form run together (a hundred sandbox status walks become one
transaction); with REDIS_URL set the batches go to RQ for ``flask jobs
worker`` instead of running here. Follow-ups still in the queue when a
process dies are lost; only work that can be lost goes here (status walks of
the sandbox, a key's last use). Usage never does: it is written before the
response.

The same thread runs the housekeeping tasks registered with ``every``: the
usage roll-up and the recovery of interrupted sends.

Jobs are named by import path so the worker, which builds its own app, can
run them without anything from the web process.
"""
from __future__ import annotations

import importlib
import logging
import os
import queue
import threading
import time
from collections import defaultdict

log = logging.getLogger(__name__)

QUEUE = "default"
# How many queued jobs one pass takes at most.
BATCH = 1000
# After the first job of a pass, wait this long for more to batch with it.
LINGER = 0.1


def resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_batch(path: str, batch: list):
    """Run a batch of one job's arguments: the worker's entry point for what web processes queue on RQ."""
    return _in_app(lambda: _call_batch(resolve(path), batch))


def _in_app(call):
    from flask import has_app_context

    if has_app_context():
        return call()
    from saas import create_app

    with create_app().app_context():
        return call()


def _call_batch(fn, batch: list) -> None:
    many = getattr(fn, "batch", None)
    if many is not None:
        many([tuple(args) for args in batch])
    else:
        for args in batch:
            fn(*args)


class BackgroundQueue:
    """One per app and process: a queue, a thread that drains it, and periodic tasks."""

    def __init__(self, app, rq_queue=None):
        self.app = app
        self.rq_queue = rq_queue
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._tasks: list[list] = []  # [name, interval, fn, next_due]
        self._pid = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0

    def every(self, name: str, seconds: float, fn) -> None:
        """Run ``fn()`` in an app context about every ``seconds`` in this process's background thread."""
        self._tasks.append([name, seconds, fn, time.monotonic() + seconds])

    def enqueue(self, path: str, *args) -> None:
        self._ensure_thread()
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put((path, args))

    def start(self) -> None:
        """Start the background thread in this process (idempotent; safe after a fork)."""
        self._ensure_thread()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until every job queued so far has run; True unless it timed out."""
        return self._idle.wait(timeout)

    def run_due_tasks(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for task in self._tasks:
            name, interval, fn, due = task
            if force or now >= due:
                task[3] = now + interval
                self._guarded(name, fn)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="background-jobs", daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._wait())
            except queue.Empty:
                first = None
            jobs = [first] if first is not None else []
            if jobs:
                time.sleep(LINGER)
            while len(jobs) < BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if jobs:
                self._dispatch(jobs)
                with self._lock:
                    self._pending -= len(jobs)
                    if self._pending == 0:
                        self._idle.set()
            self.run_due_tasks()

    def _wait(self) -> float:
        if not self._tasks:
            return 60.0
        return max(0.01, min(task[3] for task in self._tasks) - time.monotonic())

    def _dispatch(self, jobs: list) -> None:
        grouped: dict[str, list] = defaultdict(list)
        for path, args in jobs:
            grouped[path].append(args)
        for path, batch in grouped.items():
            if self.rq_queue is not None:
                try:
                    self.rq_queue.enqueue(run_batch, path, [list(args) for args in batch])
                    continue
                except Exception:
                    log.exception("could not queue %s on Redis; running it here", path)
            self._guarded(path, lambda: _call_batch(resolve(path), batch))

    def _guarded(self, name: str, call) -> None:
        from saas.extensions import db

        with self.app.app_context():
            try:
                call()
            except Exception:
                # A failed follow-up must never take the thread (or a request) down with it.
                log.exception("background job %s failed", name)
                db.session.rollback()
            finally:
                db.session.remove()


def enqueue(path: str, *args) -> None:
    """Run ``path(*args)`` after the response (see the module's docstring)."""
    from flask import current_app

    current_app.extensions["background"].enqueue(path, *args)


def init_app(app) -> None:
    url = app.config.get("REDIS_URL")
    rq_queue = None
    if url:
        from redis import Redis
        from rq import Queue

        # Redis.from_url connects lazily: nothing is opened until the first job.
        rq_queue = Queue(QUEUE, connection=Redis.from_url(url, **app.config.get("REDIS_OPTIONS", {})))
    app.extensions["rq_queue"] = rq_queue
    app.extensions["background"] = BackgroundQueue(app, rq_queue)
