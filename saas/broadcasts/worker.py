"""The broadcast engine as a process runs it: ``flask broadcasts run`` (a worker of its own), or a web
process's housekeeping thread sending for a few seconds each tick (BROADCAST_IN_WEB)."""
from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

from saas.broadcasts import settings
from saas.broadcasts.pacing import Pacing, Yielding
from saas.broadcasts.runner import Runner, tick

log = logging.getLogger(__name__)

# How long a web process's housekeeping thread sends per tick (the thread has other work).
IN_WEB_SECONDS = 2.0
# os.nice's range: 19 is the lowest priority.
LOWEST = 19


def runner_for(app) -> Runner:
    """A Runner with the app's send service, session and settings (call it in an app context)."""
    from saas.extensions import db
    from saas.messaging.outbound import send_service

    config = app.config
    pacing = Pacing(share=config["BROADCAST_RATE_SHARE"], enabled=config["BROADCAST_PACING"])
    return Runner(db.session, send_service(app), batch=config["BROADCAST_BATCH"], pacing=pacing,
                  recover_after=timedelta(seconds=settings.recover_after(config)))


def lower_priority(app) -> int:
    """Lower this process's CPU priority by BROADCAST_WORKER_NICE (a worker process's own, never a web
    process's): on cores shared with web processes the kernel serves their requests first and the worker
    sends with what CPU is left, at full speed on idle cores. The niceness now."""
    if not hasattr(os, "nice"):
        return 0
    step = min(max(app.config["BROADCAST_WORKER_NICE"], 0), LOWEST)
    niceness = os.nice(step)
    if step:
        log.info("broadcast worker niceness %s", niceness)
    return niceness


def worker_runner(app) -> Runner:
    """The Runner of a worker process of its own (``flask broadcasts run``): its CPU priority lowered, and
    pausing after a batch that waited long for a CPU (BROADCAST_YIELD_SHARE)."""
    lower_priority(app)
    runner = runner_for(app)
    runner.yielding = Yielding(app.config["BROADCAST_YIELD_SHARE"])
    return runner


def install(app) -> None:
    """The settings into ``app.config`` (what the caller set wins), and, with housekeeping, the tick in
    every process's background thread (plus some sending when BROADCAST_IN_WEB)."""
    for name, value in settings.load().items():
        app.config.setdefault(name, value)
    if not app.config["HOUSEKEEPING"]:
        return
    from saas.broadcasts import check_job

    # Checks whose job was lost, or whose worker died, are queued again.
    app.extensions["background"].every("broadcast checks", 60.0, check_job.resume_stalled)
    state = {}

    def turn():
        runner = state.get("runner")
        if runner is None:
            runner = state["runner"] = runner_for(app)
        if not app.config["BROADCAST_IN_WEB"]:
            tick(runner.session, recover_after=runner.recover_after)
            return
        deadline = time.monotonic() + IN_WEB_SECONDS
        runner.run(until_idle=True, stop=lambda: time.monotonic() > deadline, tick_every=IN_WEB_SECONDS * 10)

    app.extensions["background"].every("broadcasts", app.config["BROADCAST_TICK_SECONDS"], turn)
