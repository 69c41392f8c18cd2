"""Follow-up work that runs after the response, and the housekeeping every process does.

``enqueue(path, *args)`` hands a job to this process's background queue and
returns at once. A thread drains the queue: jobs whose function has a
``batch`` form run together (a hundred sandbox status walks become one
transaction); with REDIS_URL set the batches go to RQ for ``flask jobs
worker`` instead of running here. Follow-ups still in the queue when a
process dies are lost; only work that can be lost goes here (status walks of
the sandbox, a key's last use). Usage never does: it is written before the
response.

Inside an RQ job (in the worker's work-horse, a process that ends with the
job) there is no "after": ``enqueue`` puts the follow-up on RQ before it
returns, or runs it there and then. ``queue_now`` is for work that must not
be lost (an email): one RQ job of its own, put on Redis before it returns,
retried by RQ when it raises.

While Redis cannot be reached (saas.outages), nothing waits for it and
nothing is lost: batches run in this process's thread instead, and
``queue_now`` says no, so its caller does the work another way. The worker
(saas.rq_worker) survives Redis going away and coming back: it starts again
with a backoff and goes on with the jobs Redis kept.

The same thread runs the housekeeping tasks registered with ``every``: the
usage roll-up and the recovery of interrupted sends.

A job that must not wait behind the others (automation's replies, which
would otherwise queue behind the applying of WhatsApp's notifications) gets a
lane of its own (``lane``): a bounded queue and a few threads, each taking every
call waiting in it at once (up to the lane's ``batch``) and running them as one
batch (the job's ``batch`` form). A lane is only for work a sweep does again: a
call that finds its lane full is left to it.

Jobs are named by import path so the worker (saas.worker, which builds its
own app) can run them without anything from the web process; RQ is handed the
worker's entry points by name too, so this module never builds an app.
"""
from __future__ import annotations

import contextvars
import importlib
import logging
import os
import queue
import threading
import time
from collections import defaultdict

from saas.outages import Outage, redis_client_options

log = logging.getLogger(__name__)

QUEUE = "default"
# How many queued jobs one pass takes at most.
BATCH = 1000
# After the first job of a pass, wait this long for more to batch with it; longer when the batches go to RQ,
# where each is a job the worker forks a process for (a few a second is what one worker should take).
LINGER = 0.1
RQ_LINGER = 1.0

# What this process is running: None (a request, a command), "here" (a job of its background thread), or
# "rq" (an RQ job, in the worker's work-horse, a process that ends with the job).
_running = contextvars.ContextVar("running_job", default=None)


# What RQ runs in the worker's work-horse: entry points that build the worker's app (saas.worker).
RUN_BATCH = "saas.worker.run_batch"
RUN_JOB = "saas.worker.run_job"


def resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def as_rq_job(call):
    """Run ``call()`` marked as an RQ job (``in_job`` is true inside it)."""
    token = _running.set("rq")
    try:
        return call()
    finally:
        _running.reset(token)


def call_batch(path: str, batch: list) -> None:
    """Run one job's batch of arguments: its ``batch`` form when it has one, else one call each."""
    fn = resolve(path)
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
        self.outage = Outage("follow-up jobs", "run in this process")
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._tasks: list[list] = []  # [name, interval, fn, next_due]
        self._pid = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lanes: dict[str, "_Lane"] = {}

    def lane(self, path: str, *, threads: int, bound: int, batch: int = 1) -> None:
        """Run ``path``'s calls on a lane of their own: ``threads`` threads, each taking up to ``batch`` waiting
        calls at a time, at most ``bound`` calls waiting (more are dropped: only for work a sweep does again)."""
        self._lanes[path] = _Lane(path, max(1, threads), max(1, bound), max(1, batch))

    def every(self, name: str, seconds: float, fn) -> None:
        """Run ``fn()`` in an app context about every ``seconds`` in this process's background thread."""
        self._tasks.append([name, seconds, fn, time.monotonic() + seconds])

    def enqueue(self, path: str, *args) -> None:
        if _running.get() == "rq":
            # This process ends with its job: the follow-up goes to RQ now, or runs now.
            self._dispatch([(path, args)])
            return
        self._ensure_thread()
        lane = self._lanes.get(path)
        with self._lock:
            self._pending += 1
            self._idle.clear()
        if lane is None:
            self._queue.put((path, args))
        elif not lane.put(self, args):
            self._done(1)

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
                time.sleep(RQ_LINGER if self.rq_queue is not None and not self.outage.down else LINGER)
            while len(jobs) < BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if jobs:
                self._dispatch(jobs)
                self._done(len(jobs))
            self.run_due_tasks()

    def _done(self, count: int) -> None:
        with self._lock:
            self._pending -= count
            if self._pending == 0:
                self._idle.set()

    def _wait(self) -> float:
        if not self._tasks:
            return 60.0
        return max(0.01, min(task[3] for task in self._tasks) - time.monotonic())

    def _dispatch(self, jobs: list) -> None:
        grouped: dict[str, list] = defaultdict(list)
        for path, args in jobs:
            grouped[path].append(args)
        for path, batch in grouped.items():
            if self.put_on_rq(RUN_BATCH, path, [list(args) for args in batch]):
                continue
            self._guarded(path, lambda: call_batch(path, batch))

    def runs_jobs_here(self) -> bool:
        """Whether this process runs its jobs itself (no RQ, or Redis is down) rather than handing them to RQ."""
        return self.rq_queue is None or self.outage.down

    def put_on_rq(self, fn, *args, **options) -> bool:
        """Enqueue ``fn(*args)`` on RQ; False when there is no RQ or Redis cannot be reached (nothing queued)."""
        from redis.exceptions import RedisError

        if self.rq_queue is None or not self.outage.worth_trying():
            return False
        try:
            self.rq_queue.enqueue(fn, *args, **options)
        except RedisError as exc:
            self.outage.failed(exc)
            return False
        except Exception:  # noqa: BLE001 - whatever RQ could not take is done here instead, never dropped
            log.exception("could not queue %s on RQ; running it here", args[0] if args else fn)
            return False
        self.outage.succeeded()
        return True

    def _guarded(self, name: str, call) -> None:
        from saas.extensions import db

        token = _running.set(_running.get() or "here")  # run by an RQ job (Redis gone), it stays one
        with self.app.app_context():
            try:
                call()
            except Exception:
                # A failed follow-up must never take the thread (or a request) down with it.
                log.exception("background job %s failed", name)
                db.session.rollback()
            finally:
                db.session.remove()
                _running.reset(token)


class _Lane:
    """A job's own queue (bounded) and threads, started in each process on first use."""

    def __init__(self, path: str, threads: int, bound: int, batch: int = 1):
        self.path, self.threads, self.batch = path, threads, batch
        self._queue: queue.Queue = queue.Queue(bound)
        self._pid = None
        self._lock = threading.Lock()

    def put(self, background: BackgroundQueue, args) -> bool:
        """Queue one call; False when the lane is full (nothing queued)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    for n in range(self.threads):
                        threading.Thread(target=self._loop, args=(background,), name=f"lane {self.path} {n}",
                                         daemon=True).start()
        try:
            self._queue.put_nowait(args)
        except queue.Full:
            log.warning("the lane of %s is full; the call is left to its sweep", self.path)
            return False
        return True

    def _loop(self, background: BackgroundQueue) -> None:
        while True:
            taken = [self._queue.get()]
            while len(taken) < self.batch:
                try:
                    taken.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                background._dispatch([(self.path, args) for args in taken])
            finally:
                background._done(len(taken))


def enqueue(path: str, *args) -> None:
    """Run ``path(*args)`` after the response (see the module's docstring)."""
    from flask import current_app

    current_app.extensions["background"].enqueue(path, *args)


def queue_now(path: str, *args, retry_waits: list[int] = ()) -> bool:
    """Put ``path(*args)`` on RQ before returning, as a job of its own; False when there is no RQ or Redis
    cannot be reached (nothing was queued: the caller does the work another way).

    Durable: once queued it survives this process. When the job raises, RQ runs it again after each of
    ``retry_waits`` (whole seconds; the worker's scheduler requeues it), then keeps it among its failed jobs.
    """
    from flask import current_app
    from rq import Retry

    options = {"description": path}
    if retry_waits:
        options["retry"] = Retry(max=len(retry_waits), interval=list(retry_waits))
    return current_app.extensions["background"].put_on_rq(RUN_JOB, path, list(args), **options)


def in_job() -> bool:
    """True while this process runs a job (of its background thread, or RQ's): nothing waits for it to end."""
    return _running.get() is not None


def init_app(app) -> None:
    url = app.config.get("REDIS_URL")
    rq_queue = None
    if url:
        from redis import Redis
        from rq import Queue

        # Redis.from_url connects lazily: nothing is opened until the first job.
        options = redis_client_options(app.config.get("REDIS_OPTIONS", {}))
        rq_queue = Queue(QUEUE, connection=Redis.from_url(url, **options))
    app.extensions["rq_queue"] = rq_queue
    app.extensions["background"] = BackgroundQueue(app, rq_queue)
