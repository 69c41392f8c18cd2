"""The worker (``flask jobs worker``, ``python worker.py``): RQ's, kept alive through Redis outages.

RQ ends its loop when Redis goes away anywhere but in its wait for a job;
``work`` starts a new one after a backoff and carries on with the jobs Redis
kept. A job RQ had taken off the queue and not yet started when Redis went
(``Stranded``) is put back on the queue and run, rather than failed unrun.
"""
from __future__ import annotations

import logging
import signal
import time

log = logging.getLogger(__name__)

# The worker's waits before it starts again after losing Redis: doubling, at most this long.
WORKER_RESTART_MAX_SECONDS = 5.0
# How often the worker looks for stranded jobs (and does RQ's upkeep), even with no job coming.
WORKER_MAINTENANCE_SECONDS = 10
# A job seen stranded this long apart, twice, is put back on the queue (RQ takes a job in well under that).
STRANDED_SECONDS = 5.0

# Moves one job id from RQ's intermediate list back to the front of its queue, if it is still there.
_PUT_BACK = """
if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('lpush', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


class Stranded:
    """Jobs a worker took off the queue and never started, put back on it.

    RQ moves a job from its queue to an intermediate list, then reads the job
    and marks it started. Redis lost in between (or the worker killed) leaves
    the job on that list, where RQ fails it a minute later without running
    it. Seen there twice, at least STRANDED_SECONDS apart and never started,
    it goes back to the front of its queue instead (atomically, so two workers
    cannot both put it back), and a worker runs it.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._seen: dict[str, float] = {}  # job id -> when first seen stranded

    def put_back(self, queue) -> int:
        """Put back this queue's jobs stranded long enough; how many went back."""
        connection = queue.connection
        intermediate = queue.intermediate_queue_key
        now = self.clock()
        ids = [job_id.decode() for job_id in connection.lrange(intermediate, 0, -1)]
        self._seen = {job_id: self._seen.get(job_id, now) for job_id in ids
                      if job_id not in queue.started_job_registry}
        put_back = connection.register_script(_PUT_BACK)
        moved = 0
        for job_id, since in list(self._seen.items()):
            if now - since >= STRANDED_SECONDS and put_back(keys=[intermediate, queue.key], args=[job_id]):
                log.warning("job %s was taken off the queue and never started; it is queued again", job_id)
                del self._seen[job_id]
                moved += 1
        return moved


def work(rq_queue) -> None:
    """The worker (``flask jobs worker``): RQ's, with its scheduler (for retries that wait), until told to stop.

    RQ itself waits for Redis while it waits for a job; losing Redis anywhere else ends its loop. Then a
    new worker starts after a backoff (doubling, at most WORKER_RESTART_MAX_SECONDS) and carries on with
    the jobs Redis kept. SIGTERM or SIGINT ends it as RQ's does (after the current job).
    """
    import redis
    from rq import Worker

    stranded = Stranded()

    class ReconnectingWorker(Worker):
        # RQ's own wait between tries while Redis is down (its default grows to a minute).
        max_connection_wait_time = WORKER_RESTART_MAX_SECONDS
        stop_asked = False

        def request_stop(self, signum, frame):
            self.stop_asked = True
            super().request_stop(signum, frame)

        def run_maintenance_tasks(self):
            for queue in self.queues:
                stranded.put_back(queue)
            super().run_maintenance_tasks()

    stop: list[int] = []

    def stop_between_workers(signum, frame):
        stop.append(signum)

    wait = 1.0
    while True:
        worker = None
        try:
            # A short TTL wakes the worker (RQ waits TTL - 15 s for a job) for its upkeep even while no job comes.
            worker = ReconnectingWorker([rq_queue], connection=rq_queue.connection,  # it talks to Redis already
                                        worker_ttl=WORKER_MAINTENANCE_SECONDS + 15,
                                        maintenance_interval=WORKER_MAINTENANCE_SECONDS)
            worked = worker.work(with_scheduler=True)
            why = "loop ended"
        except redis.exceptions.RedisError as exc:
            worked, why = False, f"lost Redis ({type(exc).__name__}: {exc})"
        if worker is not None and worker.stop_asked:
            return
        log.warning("the worker's %s; starting again in %.0f s", why, wait)
        # RQ's signal handlers belong to the worker that ended: until the next one starts, a stop is noted here.
        signal.signal(signal.SIGTERM, stop_between_workers)
        signal.signal(signal.SIGINT, stop_between_workers)
        deadline = time.monotonic() + wait
        while not stop and time.monotonic() < deadline:
            time.sleep(0.1)
        if stop:
            return
        wait = 1.0 if worked else min(wait * 2, WORKER_RESTART_MAX_SECONDS)
