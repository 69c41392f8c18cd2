"""A redis-server of the test's own, and the Procfile's commands run as real processes against it.

The server listens on a free loopback port (never the machine's 6379), keeps nothing on disk, and can be
stopped and started again on the same port, as an outage does. Every process is started in its own
session and stopped by its id.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, seconds: float, why=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    if not check():
        raise AssertionError(f"gave up after {seconds} s\n{why()}")


def stop_process(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM to the process's group, SIGKILL if it is still there after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class RedisServer:
    def __init__(self, workdir: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_until(self.answers, 10, lambda: f"redis-server on {self.port} did not answer")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=10)
            self.proc = None
        wait_until(lambda: not self.answers(), 10)


def procfile() -> dict[str, str]:
    return {kind.strip(): command.strip() for kind, command in
            (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                            if line.strip() and not line.startswith("#"))}


class ProcfileProcess:
    """One of the Procfile's commands (web, worker), run as Heroku would, its output kept in a log file."""

    def __init__(self, kind: str, env: dict, logs: Path):
        self.kind, self.log_path = kind, logs / f"{kind}.log"
        env = {**env, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               "PYTHONUNBUFFERED": "1"}
        self._out = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["bash", "-c", "exec " + procfile()[kind]], cwd=ROOT, env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)
        self._out.close()


def app_environment(database_url: str, redis_url: str, mail_url: str, **extra: str) -> dict:
    """What the test's processes share: the database, the Redis, the SMTP sink, the secrets."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TEST_", "PYTEST", "STRIPE_", "WHATSAPP_", "DEPLOY_"))}
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, MAIL_URL=mail_url, LOG_LEVEL="INFO",
               MAIL_FROM="Relay <no-reply@relay.example.com>", **extra)
    return env
