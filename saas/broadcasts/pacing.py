"""Pacing: a token bucket per sending number, refilled at the number's rate (80 messages a second by
default, NumberPacing up to 1,000), empty at first and holding at most a second's worth. A worker takes from it before
each batch; broadcasts from one number share its bucket. Kept in the worker's memory: each worker
paces itself, so with several workers give each a share (BROADCAST_RATE_SHARE).

``Yielding``: a worker process on cores shared with web processes pauses after a batch that spent much of
its time waiting for a CPU (BROADCAST_YIELD_SHARE). ``Deference``: the workers together keep only a share of
one worker's pace while other sessions are at work in the database, the web serving requests
(BROADCAST_BUSY_SHARE)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import text


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
        self.lock = threading.Lock()  # a worker's lanes share its buckets

    def take(self, number_pk: int, rate: int, wanted: int) -> int:
        """How many sends (at most ``wanted``) the number may make now at ``rate`` a second; taken."""
        if not self.enabled:
            return wanted
        with self.lock:
            return self._take(number_pk, rate, wanted)

    def _take(self, number_pk: int, rate: int, wanted: int) -> int:
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


# The application_name of a broadcast worker's connections, followed by its process id: workers do not give way
# to one another, and count one another.
WORKER_APPLICATION = "relay-broadcasts"
# Other sessions of this database in the middle of work (the web's requests, jobs), and the broadcast workers
# connected to it (PostgreSQL).
AT_WORK = text(
    "SELECT count(*) FILTER (WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' "
    "AND state IN ('active', 'idle in transaction') AND application_name NOT LIKE :workers), "
    "count(DISTINCT application_name) FILTER (WHERE application_name LIKE :workers) "
    "FROM pg_stat_activity WHERE datname = current_database()")
# The longest pause after one batch for others at work.
MAX_DEFERENCE = 5.0


def worker_application(pid: int) -> str:
    """The application_name of the connections of the broadcast worker with process id ``pid``."""
    return f"{WORKER_APPLICATION} {pid}"


@dataclass(frozen=True)
class AtWork:
    others: int       # other sessions (not broadcast workers') in a statement or a transaction
    workers: int = 1  # broadcast worker processes connected, the asking one included


def at_work(session) -> AtWork:
    """Who is at work in the database now; nobody else and one worker where the database does not say
    (SQLite). Ends the read's transaction."""
    if session.get_bind().dialect.name != "postgresql":
        return AtWork(0)
    try:
        others, workers = session.execute(AT_WORK, {"workers": WORKER_APPLICATION + "%"}).one()
    finally:
        session.commit()
    return AtWork(others or 0, max(workers or 0, 1))


class Deference:
    """A worker giving way to the processes that serve requests, wherever they run: after each batch it asks
    the database who is at work (``at_work``, a callable returning an AtWork), and if
    other sessions are, it pauses so that the broadcast workers together keep ``share`` of one worker's pace
    while they work: with n workers connected, a batch that took t seconds to send is followed by
    t * (n / share - 1) (at most MAX_DEFERENCE). The database's work and the cores the workers drive (their
    backends, WhatsApp's calls) step back with them; with nobody else at work they send at full speed. Off
    with ``share`` 1 (or more)."""

    def __init__(self, share: float, at_work, *, sleep=time.sleep):
        self.share = share
        self.at_work = at_work
        self.sleep = sleep
        self.paused = 0.0

    def after_batch(self, worked: float) -> float:
        """Pause if others are at work, in proportion to the ``worked`` seconds of the batch just sent;
        seconds paused."""
        if not 0 < self.share < 1 or worked <= 0:
            return 0.0
        found = self.at_work()
        if not found.others:
            return 0.0
        pause = min(worked * (max(found.workers, 1) / self.share - 1), MAX_DEFERENCE)
        self.sleep(pause)
        self.paused += pause
        return pause
