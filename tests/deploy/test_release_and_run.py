"""The deploy steps end to end, the way Heroku runs them: the Procfile's release command against a fresh
PostgreSQL database, then its web (gunicorn) and worker (RQ) commands on Redis; a newcomer signs up over HTTP,
creates a key, sends a sandbox message, and its status walks to "read" through the RQ worker.

Needs a local PostgreSQL (DEPLOY_CHECK_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/deploy_check;
the database is dropped and created) and Redis (DEPLOY_CHECK_REDIS_URL, default redis://127.0.0.1:6379/9,
flushed); skipped without them. About 15 seconds on an idle machine (a minute on a busy one).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DEPLOY_CHECK_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/deploy_check")
REDIS_URL = os.environ.get("DEPLOY_CHECK_REDIS_URL", "redis://127.0.0.1:6379/9")
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def fresh_database(url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {admin}: {exc}")
    with conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def empty_redis(url: str) -> None:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisDown

    try:
        Redis.from_url(url, socket_connect_timeout=3).flushdb()
    except RedisDown as exc:
        pytest.skip(f"no Redis at {url}: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile() -> dict[str, str]:
    return {kind.strip(): command.strip() for kind, command in
            (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                            if line.strip() and not line.startswith("#"))}


class Processes:
    """The web and worker processes this test starts, each in its own process group, stopped by id."""

    def __init__(self, env, logs: Path):
        self.env, self.logs, self.started = env, logs, []

    def start(self, kind: str, command: str) -> subprocess.Popen:
        out = open(self.logs / f"{kind}.log", "wb")
        proc = subprocess.Popen(["bash", "-c", "exec " + command], cwd=ROOT, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((proc, out))
        return proc

    def log(self, kind: str) -> str:
        return (self.logs / f"{kind}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, out in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            out.close()


@pytest.fixture
def deployed(tmp_path):
    fresh_database(DATABASE_URL)
    empty_redis(REDIS_URL)
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TEST_", "PYTEST", "STRIPE_", "WHATSAPP_"))}
    env.update({
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        "APP_ENV": "production", "DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "deploy-check-secret", "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PORT": str(port), "WEB_CONCURRENCY": "1", "PYTHONUNBUFFERED": "1",
        # Production requires it: the only base of the links the app writes.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    })
    commands = procfile()
    release = subprocess.run(["bash", "-c", commands["release"]], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert release.returncode == 0, release.stdout + release.stderr
    processes = Processes(env, tmp_path)
    web = processes.start("web", commands["web"])
    worker = processes.start("worker", commands["worker"])
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base), 20, lambda: processes.log("web"))
        assert worker.poll() is None, processes.log("worker")
        yield base, processes, web, worker
    finally:
        processes.stop()


def answers(base) -> bool:
    import requests

    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment for 127.0.0.1
        try:
            return session.get(base + "/login", timeout=2).status_code == 200
        except requests.RequestException:
            return False


def wait_until(check, seconds, why=lambda: ""):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up after {seconds}s\n{why()}")


class Browser:
    """requests with the portal's cookies. APP_ENV=production marks them Secure, and this is plain HTTP on
    127.0.0.1 (TLS ends at Heroku's router), so they are sent anyway, as the router would pass them on."""

    def __init__(self, base):
        import requests

        self.base, self.session = base, requests.Session()
        self.session.trust_env = False

    def _unsecure(self, response):
        for cookie in self.session.cookies:
            cookie.secure = False
        return response

    def get(self, path, **kw):
        url = path if path.startswith("http") else self.base + path
        response = self._unsecure(self.session.get(url, timeout=10, allow_redirects=False, **kw))
        if response.is_redirect:
            return self.get(response.headers["Location"])
        return response

    def post(self, path, **kw):
        response = self._unsecure(self.session.post(self.base + path, timeout=10, allow_redirects=False, **kw))
        if response.is_redirect:
            return self.get(response.headers["Location"])
        return response

    def form(self, path, **data):
        token = CSRF.search(self.get(path).text).group(1)
        return self.post(path, data={"csrf_token": token, **data})


def test_release_then_web_and_worker_serve_a_newcomer(deployed):
    base, processes, web, worker = deployed
    browser = Browser(base)

    checking = browser.form("/signup", company="Deploy Check Ltd", email="owner@deploy.example.com",
                            password="correct horse battery")
    assert checking.status_code == 200 and checking.url.endswith("/signup/check-email"), checking.text[:500]
    # Without MAIL_URL the worker delivers the verification email to its log; its page's button verifies and,
    # in the browser that signed up, logs the owner in.
    links = []

    def emailed():
        links[:] = re.findall(r"https?://[^\s\"\\]+/verify-email/[^\s\"\\]+", processes.log("worker"))
        return bool(links)

    wait_until(emailed, 30, lambda: processes.log("worker"))
    signed_up = browser.form("/" + links[-1].split("/", 3)[3])
    assert signed_up.status_code == 200 and signed_up.url.endswith("/dashboard"), signed_up.text[:500]
    number_id = re.search(r'<code class="phone-number-id">(\d+)</code>', signed_up.text).group(1)
    created = browser.form("/keys", name="deploy")
    assert created.status_code == 201
    key = re.search(r'id="new-key-secret">([^<]+)<', created.text).group(1)
    # The release phase seeded the plans: the newcomer is on Free.
    assert 'id="plan-name">Free<' in signed_up.text

    api = Browser(base).session
    auth = {"Authorization": f"Bearer {key}"}
    sent = api.post(f"{base}/v23.0/{number_id}/messages", timeout=10, headers=auth,
                    json={"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                          "text": {"body": "hello from the deploy check"}})
    assert sent.status_code == 200, sent.text
    wamid = sent.json()["messages"][0]["id"]

    def status():
        [message] = [m for m in api.get(f"{base}/api/v1/messages", headers=auth, timeout=10).json()["data"]
                     if m["wa_message_id"] == wamid]
        return message

    wait_until(lambda: status()["status"] == "read", 20,
               lambda: f"{status()}\n--- worker\n{processes.log('worker')}\n--- web\n{processes.log('web')}")
    message = status()
    assert message["sent_at"] and message["delivered_at"] and message["read_at"]
    # The walk ran in the RQ worker, not in the web process's thread.
    assert "run_batch" in processes.log("worker"), processes.log("worker")
    assert web.poll() is None and worker.poll() is None
