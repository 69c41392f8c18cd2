"""Background jobs: RQ on Redis when REDIS_URL is set, otherwise run inline.

Jobs are named by import path so the worker, which builds its own app, can
run them without anything from the web process.
"""
from __future__ import annotations

import importlib
import logging

from flask import current_app

log = logging.getLogger(__name__)

QUEUE = "default"


def resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run(path: str, *args):
    """Run one job inside an app context (the worker's entry point for every job)."""
    from flask import has_app_context

    if has_app_context():
        return resolve(path)(*args)
    from saas import create_app

    with create_app().app_context():
        return resolve(path)(*args)


def enqueue(path: str, *args) -> None:
    queue = current_app.extensions.get("rq_queue")
    if queue is None:
        try:
            resolve(path)(*args)
        except Exception:
            # An inline job failing must not fail the request that queued it.
            log.exception("inline job %s failed", path)
            from saas.extensions import db

            db.session.rollback()
        return
    queue.enqueue(run, path, *args)


def init_app(app) -> None:
    url = app.config.get("REDIS_URL")
    if not url:
        app.extensions["rq_queue"] = None
        return
    from redis import Redis
    from rq import Queue

    # Redis.from_url connects lazily: nothing is opened until the first job.
    app.extensions["rq_queue"] = Queue(QUEUE, connection=Redis.from_url(url))
