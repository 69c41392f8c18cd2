"""The broadcast engine's settings, from the environment (saas.env's readers), for ``app.config``."""
from __future__ import annotations

from saas.env import env_bool, env_float, env_int

# The default of BROADCAST_CHECK_INLINE_MAX: about 0.4 s of checking in a request.
INLINE_MAX = 2000


def load() -> dict:
    return {
        # Recipients one claim takes (one send_many call); at most this many rows are `sending` per worker.
        "BROADCAST_BATCH": env_int("BROADCAST_BATCH", 100),
        # Pace each number's sends (its messages per second); off only for benchmarks.
        "BROADCAST_PACING": env_bool("BROADCAST_PACING", True),
        # How much `flask broadcasts run` lowers its own CPU priority (os.nice: 0 to 19), so the web processes
        # on the same cores are served first and the worker sends with the CPU they leave.
        "BROADCAST_WORKER_NICE": env_int("BROADCAST_WORKER_NICE", 10),
        # A worker pauses after a batch that spent more than this share of its time waiting for a CPU (others
        # want the cores), as long as it waited; 0: never.
        "BROADCAST_YIELD_SHARE": env_float("BROADCAST_YIELD_SHARE", 0.5),
        # While other sessions are at work in the database (the web serving requests), `flask broadcasts run`
        # keeps this share of its pace, pausing after each batch; 1: never gives way.
        "BROADCAST_BUSY_SHARE": env_float("BROADCAST_BUSY_SHARE", 1.0),
        # Batches `flask broadcasts run` sends side by side (one claiming and writing while another waits for
        # WhatsApp), each in a thread with a database session of its own; one by default (two cost more CPU a
        # send where measured).
        "BROADCAST_WORKER_LANES": env_int("BROADCAST_WORKER_LANES", 1),
        # Each worker's share of a number's rate (0.5 with two workers).
        "BROADCAST_RATE_SHARE": env_float("BROADCAST_RATE_SHARE", 1.0),
        # How often due broadcasts are started and abandoned claims recovered (the tick).
        "BROADCAST_TICK_SECONDS": env_float("BROADCAST_TICK_SECONDS", 5.0),
        # A claim still `sending` this long was left by a dead worker. Unset: the longest a batch can take
        # (the longest live send, once per round of SEND_MANY_CONCURRENCY calls) plus a minute.
        "BROADCAST_RECOVER_AFTER_SECONDS": env_float("BROADCAST_RECOVER_AFTER_SECONDS", 0.0) or None,
        # Web processes send broadcasts from their housekeeping thread (for a few seconds per tick) when
        # no `flask broadcasts run` worker is deployed.
        "BROADCAST_IN_WEB": env_bool("BROADCAST_IN_WEB", True),
        # Audiences up to this many contacts are checked in the request; larger ones by a job (the broadcast
        # is `checking` until the check is ready).
        "BROADCAST_CHECK_INLINE_MAX": env_int("BROADCAST_CHECK_INLINE_MAX", INLINE_MAX),
    }


def recover_after(config) -> float:
    """BROADCAST_RECOVER_AFTER_SECONDS, or the longest a batch can take plus a minute."""
    if config.get("BROADCAST_RECOVER_AFTER_SECONDS"):
        return float(config["BROADCAST_RECOVER_AFTER_SECONDS"])
    from saas.messaging.outbound.settle import longest_send

    rounds = -(-config["BROADCAST_BATCH"] // max(config["SEND_MANY_CONCURRENCY"], 1))
    return longest_send(config).total_seconds() * rounds + 60.0
