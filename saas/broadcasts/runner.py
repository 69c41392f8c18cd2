"""The broadcast worker's loop and the tick.

``Runner.pass_once`` gives every running broadcast one turn, the one that sent longest ago first
(round robin, so one tenant's large broadcast does not hold back another's): its recipients frozen a
few chunks further if they are not all written yet, then one batch as large as its number's bucket
allows (saas.broadcasts.pacing). ``tick`` starts the scheduled broadcasts that are due (a recurring
one's next run made at the same time) and settles claims a dead worker left (saas.broadcasts.recovery).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select, update

from saas.broadcasts import schedule
from saas.broadcasts.engine import postgres, send_batch
from saas.broadcasts.freeze import freeze
from saas.broadcasts.models import DEFAULT_RATE, RUNNING, SCHEDULED, Broadcast, NumberPacing
from saas.broadcasts.pacing import Deference, Pacing, Yielding
from saas.broadcasts.recovery import recover
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

FREEZE_CHUNKS_PER_TURN = 5
IDLE_SECONDS = 1.0


class Runner:
    def __init__(self, session, service, *, batch: int = 100, pacing: Pacing | None = None, clock=utcnow,
                 sleep=time.sleep, recover_after: timedelta = timedelta(minutes=10), yielding: Yielding | None = None,
                 deference: Deference | None = None, lanes: int = 1, lane_session=None):
        self.session = session
        self.service = service
        self.batch = batch
        self.pacing = pacing or Pacing()
        self.clock = clock
        self.sleep = sleep
        self.recover_after = recover_after
        self.yielding = yielding
        self.deference = deference
        # Batches sent side by side (one claiming and writing while another waits for WhatsApp), each lane a
        # thread with a session of its own (``lane_session()``: a context manager giving one).
        self.lanes = lanes if lane_session is not None else 1
        self.lane_session = lane_session
        # WhatsApp's calls of every batch of a run, on threads started once (see ``run``).
        self.pool: ThreadPoolExecutor | None = None

    def running(self) -> list[tuple]:
        """(id, number, rate) of the running broadcasts, the one that sent longest ago first."""
        rows = self.session.execute(
            select(Broadcast.id, Broadcast.phone_number_id, Broadcast.messages_per_second, Broadcast.frozen_at,
                   NumberPacing.messages_per_second)
            .outerjoin(NumberPacing, NumberPacing.phone_number_id == Broadcast.phone_number_id)
            .where(Broadcast.status == RUNNING)
            .order_by(Broadcast.last_batch_at.is_not(None), Broadcast.last_batch_at, Broadcast.id).limit(1000)).all()
        self.session.commit()
        return [(bid, number, min(rate or DEFAULT_RATE, number_rate or DEFAULT_RATE), frozen)
                for bid, number, rate, frozen, number_rate in rows]

    def pass_once(self) -> tuple[int, float]:
        """One turn for each running broadcast: (recipients claimed, seconds until a paced one may go on;
        -1 while an audience is still being written down, so the caller is not idle)."""
        claimed, wait = 0, 0.0
        for broadcast_id, number, rate, frozen_at in self.running():
            if frozen_at is None and not freeze(self.session, broadcast_id, budget=FREEZE_CHUNKS_PER_TURN):
                wait = -1.0
                continue
            allowed = self.pacing.take(number, rate, self.batch)
            if allowed == 0:
                pause = self.pacing.wait(number)
                wait = pause if wait == 0 else min(wait, pause)
                continue
            claimed += send_batch(self.session, self.service, broadcast_id, allowed, clock=self.clock, pool=self.pool)
        return claimed, wait

    def run(self, *, until_idle: bool = False, stop=lambda: False, tick_every: float = 5.0) -> int:
        """Send until ``stop()`` (or, with ``until_idle``, until nothing is left to send now); how many
        recipients were claimed. Ticks every ``tick_every`` seconds. WhatsApp's calls go out on one pool of
        the send service's ``concurrency`` threads for the whole run (shared by the lanes), not threads
        started for every batch."""
        with ThreadPoolExecutor(max(self.service.concurrency, 1), thread_name_prefix="broadcast-send") as pool:
            self.pool = pool
            try:
                if self.lanes > 1:
                    return self._with_lanes(until_idle, stop, tick_every)
                return self._run(until_idle, stop, tick_every)
            finally:
                self.pool = None

    def _with_lanes(self, until_idle: bool, stop, tick_every: float) -> int:
        """This lane (which also ticks) and ``lanes - 1`` more, each until idle or stopped; one failing
        stops the others after their batch, and its error is raised."""
        failed = threading.Event()
        halted = lambda: failed.is_set() or stop()  # noqa: E731
        with ThreadPoolExecutor(self.lanes - 1, thread_name_prefix="broadcast-lane") as lanes:
            others = [lanes.submit(self._lane, until_idle, halted, failed) for _ in range(self.lanes - 1)]
            try:
                total = self._run(until_idle, halted, tick_every)
            except BaseException:
                failed.set()
                raise
            for lane in others:
                total += lane.result()
        return total

    def _lane(self, until_idle: bool, stop, failed: threading.Event) -> int:
        with self.lane_session() as session:
            lane = Runner(session, self.service, batch=self.batch, pacing=self.pacing, clock=self.clock,
                          sleep=self.sleep, recover_after=self.recover_after, deference=self.deference,
                          yielding=self.yielding and Yielding(self.yielding.share))
            lane.pool = self.pool
            try:
                return lane._run(until_idle, stop, None)
            except BaseException:
                failed.set()
                raise
            finally:
                if lane.yielding is not None:
                    self.yielding.paused += lane.yielding.paused

    def _run(self, until_idle: bool, stop, tick_every: float | None) -> int:
        total, last_tick = 0, None
        while not stop():
            if tick_every is not None and (last_tick is None or time.monotonic() - last_tick >= tick_every):
                tick(self.session, recover_after=self.recover_after, now=self.clock())
                last_tick = time.monotonic()
            began = time.monotonic()
            claimed, wait = self.pass_once()
            total += claimed
            if claimed:
                self._give_way(time.monotonic() - began)
            if claimed or wait < 0:
                continue
            if wait:
                self.sleep(wait)
            elif until_idle:
                return total
            else:
                self.sleep(IDLE_SECONDS)
        return total

    def _give_way(self, worked: float) -> None:
        """After a batch: pause for busy cores (``yielding``) and for others at work (``deference``)."""
        if self.yielding is not None:
            self.yielding.after_batch()
        if self.deference is not None:
            self.deference.after_batch(worked)


def tick(session, *, recover_after: timedelta, now=None) -> dict:
    """Start what is due and recover what a dead worker left; what was done."""
    now = now or utcnow()
    return {"started": start_due(session, now), "recovered": recover(session, older_than=recover_after, now=now)}


def start_due(session, now) -> int:
    """Scheduled broadcasts whose time has come start running; a recurring one's next run is made,
    the same wall-clock time a day or a week on in its time zone. Commits."""
    query = select(Broadcast).where(Broadcast.status == SCHEDULED, Broadcast.schedule_at <= now).limit(100)
    if postgres(session):
        query = query.with_for_update(skip_locked=True)
    try:
        due = list(session.scalars(query))
        for broadcast in due:
            moved = session.execute(update(Broadcast).where(Broadcast.id == broadcast.id,
                                                            Broadcast.status == SCHEDULED)
                                    .values(status=RUNNING, started_at=now, updated_at=now)
                                    .execution_options(synchronize_session=False)).rowcount
            if moved and broadcast.recurrence:
                session.add(next_run(broadcast, now))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(due)


COPIED = ("tenant_id", "name", "phone_number_id", "template_name", "template_language", "template_category",
          "variables", "audience", "timezone", "recurrence", "messages_per_second", "retry_per_user_limit",
          "check_result", "checked_at", "created_by")


def next_run(broadcast, now) -> Broadcast:
    """The scheduled copy of a recurring broadcast for its next time after ``now``."""
    tz = schedule.zone(broadcast.timezone)
    local = schedule.parse_local(broadcast.schedule_local[:16])
    at = schedule.to_utc(local, tz)
    while at <= now:
        local = schedule.next_local(local, broadcast.recurrence)
        at = schedule.to_utc(local, tz)
    return Broadcast(**{name: getattr(broadcast, name) for name in COPIED}, status=SCHEDULED, schedule_at=at,
                     schedule_local=schedule.local_text(local), series_id=broadcast.series_id or broadcast.id,
                     created_at=now, updated_at=now)
