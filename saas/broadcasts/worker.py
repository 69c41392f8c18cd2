"""The broadcast engine as a process runs it: ``flask broadcasts run`` (a worker of its own), or a web
process's housekeeping thread sending for a few seconds each tick (BROADCAST_IN_WEB)."""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event

from saas.broadcasts import settings
from saas.broadcasts.pacing import Deference, Pacing, Yielding, at_work, worker_application
from saas.broadcasts.runner import Runner, tick

log = logging.getLogger(__name__)

# How long a web process's housekeeping thread sends per tick (the thread has other work).
IN_WEB_SECONDS = 2.0
# os.nice's range: 19 is the lowest priority.
LOWEST = 19
# This process's autogroup (its session's share of the cores) and that group's nice, where Linux has them.
AUTOGROUP = "/proc/self/autogroup"


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
        lower_session_priority(step)
    return niceness


def lower_session_priority(step: int, *, path: str = AUTOGROUP) -> bool:
    """With Linux's autogroup scheduling (sched_autogroup_enabled) the cores are shared first between
    sessions and a process's niceness only counts within its own: a worker started in a session of its own
    (by a process manager, with setsid) would take as much CPU as all the web processes together whatever
    its niceness. So a worker that leads its session lowers the session's too (its autogroup's nice, as
    far as ``step``); one in a session it shares (started from a shell) leaves it. Whether it did."""
    if os.getsid(0) != os.getpid():
        return False
    try:
        with open(path, encoding="ascii") as handle:
            now = int(handle.read().split()[-1])
        if now >= step:
            return False
        with open(path, "w", encoding="ascii") as handle:
            handle.write(str(step))
    except (OSError, ValueError, IndexError):
        return False  # no autogroup here, or not ours to change
    log.info("broadcast worker session niceness %s", step)
    return True


def worker_runner(app) -> Runner:
    """The Runner of a worker process of its own (``flask broadcasts run``): its CPU priority lowered, pausing
    after a batch that waited long for a CPU (BROADCAST_YIELD_SHARE) and while others are at work in the
    database (BROADCAST_BUSY_SHARE), sending BROADCAST_WORKER_LANES batches side by side."""
    from saas.extensions import db

    lower_priority(app)
    name_connections(db.engine)
    runner = runner_for(app)
    runner.yielding = Yielding(app.config["BROADCAST_YIELD_SHARE"])
    runner.deference = Deference(app.config["BROADCAST_BUSY_SHARE"], lambda: at_work(db.session))
    # SQLite has one writer: lanes would only queue for it.
    runner.lanes = max(app.config["BROADCAST_WORKER_LANES"], 1) if db.engine.dialect.name == "postgresql" else 1
    real = app._get_current_object() if hasattr(app, "_get_current_object") else app  # not current_app's proxy
    runner.lane_session = lambda: _lane_session(real)
    return runner


def name_connections(engine) -> None:
    """The worker's PostgreSQL sessions carry WORKER_APPLICATION and the process id as their application_name,
    so that workers count only others' sessions at work, never one another's, and count one another
    (saas.broadcasts.pacing.at_work)."""
    if engine.dialect.name != "postgresql" or event.contains(engine, "connect", _named):
        return
    event.listen(engine, "connect", _named)
    engine.dispose()  # connections opened before are opened again, named


def _named(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET application_name = '{worker_application(os.getpid())}'")
    cursor.close()
    dbapi_connection.commit()


@contextmanager
def _lane_session(app):
    """A lane's session: Flask-SQLAlchemy's of an app context of the lane's thread."""
    from saas.extensions import db

    with app.app_context():
        try:
            yield db.session
        finally:
            db.session.remove()


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
