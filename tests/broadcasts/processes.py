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
