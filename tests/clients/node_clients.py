"""The npm WhatsApp client (tests/clients/node: package.json and package-lock.json pin it) run by node.

``make install`` installs it with ``npm ci``; a test that finds it missing installs it the same way.
Tests that need it skip only where there is no node at all.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
PACKAGE = NODE_DIR / "node_modules" / "whatsapp-api-js" / "package.json"


def node_client() -> Path:
    """The folder of the node scripts, with the pinned whatsapp-api-js installed (skips without node)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not PACKAGE.exists():
        npm = shutil.which("npm")
        assert npm, "node is installed but npm is not: cannot install tests/clients/node"
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0 and PACKAGE.exists(), f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return NODE_DIR


def run(script: str, argument: dict, *, timeout: float = 60) -> dict:
    """Run ``node script '<argument as JSON>'`` to its end; its stdout, parsed as JSON."""
    done = subprocess.run(["node", script, json.dumps(argument)], cwd=node_client(), capture_output=True,
                          text=True, timeout=timeout, env=_environment())
    assert done.returncode == 0, f"node {script} failed:\n{done.stderr}"
    return json.loads(done.stdout)


class Server:
    """A node script that serves HTTP on 127.0.0.1: it prints {"port": n} first, then serves until stopped."""

    def __init__(self, script: str, *args: str, timeout: float = 20):
        self.process = subprocess.Popen(["node", script, *args], cwd=node_client(), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=_environment())
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(remaining, 0))
            if not ready:
                self.stop()
                raise AssertionError(f"node {script} did not start within {timeout} s")
            chunk = os.read(self.process.stdout.fileno(), 4096)
            if not chunk:
                self.stop()
                raise AssertionError(f"node {script} exited: {self.process.stderr.read().decode()}")
            line += chunk
        self.port = json.loads(line.split(b"\n", 1)[0])["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


def _environment() -> dict:
    # No proxy may take a loopback call elsewhere.
    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
