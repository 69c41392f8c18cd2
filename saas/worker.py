"""The job worker's entry point: its own app, built once per process, and the RQ jobs run inside it.

Web processes put jobs on RQ by name (``saas.worker.run_batch`` and ``run_job``,
see saas.jobs); RQ's work-horse imports this module and calls them. ``main``
starts the worker itself (``python worker.py``, the Procfile's ``worker``, or
``flask jobs worker``), which survives Redis going away (saas.rq_worker.work).
"""
from __future__ import annotations

from saas import jobs, rq_worker

_app = None


def app():
    """This process's app, built at the first job (a work-horse is a fork of the worker: it inherits it)."""
    global _app
    if _app is None:
        from saas import create_app

        _app = create_app()
    return _app


def _in_app(call):
    from flask import has_app_context

    if has_app_context():
        return call()
    with app().app_context():
        return call()


def run_batch(path: str, batch: list):
    """Run a batch of one job's arguments: what web processes queue on RQ for their follow-ups."""
    return _in_app(lambda: jobs.as_rq_job(lambda: jobs.call_batch(path, batch)))


def run_job(path: str, args: list):
    """Run ``path(*args)`` as an RQ job of its own (``queue_now``); what it raises makes RQ retry it."""
    return _in_app(lambda: jobs.as_rq_job(lambda: jobs.resolve(path)(*args)))


def main() -> None:
    """Run the worker until SIGTERM or SIGINT; refuses to start without REDIS_URL."""
    with app().app_context():
        queue = app().extensions.get("rq_queue")
        if queue is None:
            raise SystemExit("REDIS_URL is not set; without it follow-up jobs run in each web process's "
                             "background thread.")
        rq_worker.work(queue)
