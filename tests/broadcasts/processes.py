"""The broadcast worker in a child process of its own (built like `flask broadcasts run`), to be killed."""
from __future__ import annotations


def run_worker(url: str, graph_url: str, batch: int, ready=None, go=None) -> None:
    """Send every running broadcast until nothing is left, as a worker process does. With ``ready`` and ``go``
    (multiprocessing events), say when built and wait for the word, so several workers start together."""
    from saas.broadcasts.worker import runner_for
    from tests.processes import build_app

    app = build_app(url, WHATSAPP_GRAPH_URL=graph_url, WHATSAPP_PAIR_RATE_BURST=0, BROADCAST_BATCH=batch,
                    BROADCAST_PACING=False)
    with app.app_context():
        runner = runner_for(app)
        if ready is not None:
            ready.set()
            go.wait(60)
        runner.run(until_idle=True)


def run_command(url: str, graph_url: str, nice: int, out) -> None:
    """`flask broadcasts run --until-idle` with BROADCAST_WORKER_NICE ``nice``; put its output and this
    process's niceness afterwards on ``out``."""
    import os

    from tests.processes import build_app

    app = build_app(url, WHATSAPP_GRAPH_URL=graph_url, WHATSAPP_PAIR_RATE_BURST=0, BROADCAST_PACING=False,
                    BROADCAST_WORKER_NICE=nice, BROADCAST_YIELD_SHARE=0, BROADCAST_BUSY_SHARE=1)
    result = app.test_cli_runner().invoke(args=["broadcasts", "run", "--until-idle"])
    out.put((result.output, os.nice(0)))


def check_then_hang(url: str, broadcast_id: int, chunk: int, chunks: int, ready, go) -> None:
    """The check's job on ``broadcast_id``, ``chunk`` contacts a transaction: after ``chunks`` of them are
    committed, say so on ``ready`` and wait on ``go`` (the parent kills this process meanwhile)."""
    from saas.broadcasts import check_job
    from tests.processes import build_app

    app = build_app(url)
    renew, done = check_job._renew, []

    def renew_then_hang(*args, **kwargs):
        lease = renew(*args, **kwargs)
        done.append(lease)
        if len(done) == chunks:
            ready.set()
            go.wait(120)
        return lease

    check_job._renew = renew_then_hang
    with app.app_context():
        check_job.run(broadcast_id, chunk=chunk)
