"""`make run`, the newcomer's first command: it migrates and seeds a SQLite database and serves the portal on
127.0.0.1, on port 5000 unless PORT says another."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from tests.deploy.test_release_and_run import ROOT, free_port

# The install step is left out (-o): the test runs inside the installed venv and must not reach PyPI.
MAKE_RUN = ["make", "--no-print-directory", "-o", ".venv/.installed", "run"]


def test_make_run_defaults_to_port_5000():
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    plan = subprocess.run(["make", "-n", *MAKE_RUN[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30, check=True).stdout
    assert "flask run --host 127.0.0.1 --port 5000" in plan


def test_make_run_serves_on_the_port_given_in_PORT(tmp_path):
    if not (ROOT / ".venv" / "bin" / "flask").exists():
        pytest.skip("no .venv to run from")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
           "HOUSEKEEPING": "false"}
    server = subprocess.Popen(MAKE_RUN, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert answer is not None, f"nothing served on {port}: {server.poll()=}"
        assert answer.status_code == 200 and "Relay" in answer.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert f"http://127.0.0.1:{port}" in output
