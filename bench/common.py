"""What the bench's modules share: the connection counts, wrk's result line, and the processes a run starts."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess

CONNECTIONS = (1, 16, 64)
WRK_TIMEOUT_S = 10
SLOW_CLIENTS = 200


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def http_get(port: int, timeout: float) -> None:
    """GET / on 127.0.0.1:port; any answer will do. Raises OSError when there is none."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
    finally:
        conn.close()


def parse_wrk(out: str) -> dict | None:
    """The BENCH_RESULT line printed by common.lua's done(), as figures in ms and req/s."""
    found = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
    if not found:
        return None
    raw = json.loads(found.group(1))
    statuses = {int(code): n for code, n in raw["statuses"].items()}
    errors, answered = raw["errors"], raw["requests"]
    return {
        "rps": answered / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0,
        "requests": answered,
        "p50": raw["p50_us"] / 1000 if answered else None,  # no answer, no latency (wrk would say 0)
        "p99": raw["p99_us"] / 1000 if answered else None,
        "statuses": statuses,
        "non2xx": sum(n for code, n in statuses.items() if not 200 <= code < 300),
        "5xx": sum(n for code, n in statuses.items() if code >= 500),
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "timeouts": errors["timeout"],
    }


class Processes:
    """Every process this run started, each in its own process group, so all can be stopped."""

    def __init__(self):
        self.live: list[subprocess.Popen] = []

    def start(self, argv, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; then whatever of the group is left."""
        if proc in self.live:
            self.live.remove(proc)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, signum)
                proc.wait(grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                continue
            break
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for proc in list(self.live):
            self.stop(proc, grace=3.0)
