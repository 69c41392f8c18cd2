"""The broadcast engine as a process runs it: ``flask broadcasts run`` (a worker of its own), or a web
process's housekeeping thread sending for a few seconds each tick (BROADCAST_IN_WEB)."""
from __future__ import annotations

import time
from datetime import timedelta

from saas.broadcasts import settings
from saas.broadcasts.pacing import Pacing
from saas.broadcasts.runner import Runner, tick

# How long a web process's housekeeping thread sends per tick (the thread has other work).
IN_WEB_SECONDS = 2.0


def runner_for(app) -> Runner:
    """A Runner with the app's send service, session and settings (call it in an app context)."""
    from saas.extensions import db
    from saas.messaging.outbound import send_service

    config = app.config
    pacing = Pacing(share=config["BROADCAST_RATE_SHARE"], enabled=config["BROADCAST_PACING"])
    return Runner(db.session, send_service(app), batch=config["BROADCAST_BATCH"], pacing=pacing,
                  recover_after=timedelta(seconds=settings.recover_after(config)))


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
