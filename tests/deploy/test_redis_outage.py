"""Redis stopped mid-load and started again: the Procfile's web (gunicorn) and worker keep working.

A Redis of the test's own (persisting to its temp directory, as a hosted Redis does), the real gunicorn
and RQ worker processes on the test's PostgreSQL database, and the SMTP sink. API calls stream in while
Redis is stopped: none may fail (2xx, or a 429 from a plan's limit now counted in the web process), the
rate-limit outage is logged once, what the sends leave to follow-up jobs runs in the web process, a
password reset still arrives. Redis comes back: the worker, still the same process, runs jobs again.
Nothing is lost: every send answered is a message, and every message walks to "read".
"""
from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from saas.extensions import db
from tests import factories
from tests.redis_server import ProcfileProcess, RedisServer, app_environment, free_port, wait_until

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class PersistentRedis(RedisServer):
    """Keeps its data across a stop and start, as Heroku's Redis does (a stop is an outage, not a wipe)."""

    def start(self) -> "PersistentRedis":
        import subprocess

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self.answers, 10, lambda: f"redis-server on {self.port} did not answer")
        return self


class Stream:
    """API calls one after another from a few threads until stopped; every answer's status, by phase."""

    def __init__(self, base: str, key: str, number: str, threads: int = 2):
        self.base, self.key, self.number = base, key, number
        self.phase = "up"
        self.statuses: dict[str, Counter] = {}
        self.sent: list[str] = []  # wamids of the sends answered
        self.sending = threading.Event()
        self.sending.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> "Stream":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, n: int) -> None:
        session = requests.Session()
        session.trust_env = False
        headers = {"Authorization": f"Bearer {self.key}"}
        i = 0
        while not self._stop.is_set():
            i += 1
            phase = self.phase
            if self.sending.is_set() and i % 2:
                to = f"1555{n}{int(time.time() * 1000) % 10**6:06d}{i % 10}"
                answer = session.post(f"{self.base}/v23.0/{self.number}/messages", headers=headers, timeout=15,
                                      json={"messaging_product": "whatsapp", "to": to, "type": "text",
                                            "text": {"body": "outage"}})
                if answer.status_code == 200:
                    with self._lock:
                        self.sent.append(answer.json()["messages"][0]["id"])
            else:
                answer = session.get(f"{self.base}/api/v1/usage", headers=headers, timeout=15)
            with self._lock:
                self.statuses.setdefault(phase, Counter())[answer.status_code] += 1


def forgot_password(base: str, email: str) -> int:
    session = requests.Session()
    session.trust_env = False
    token = CSRF.search(session.get(f"{base}/forgot-password", timeout=10).text).group(1)
    return session.post(f"{base}/forgot-password", data={"csrf_token": token, "email": email}, timeout=10,
                        allow_redirects=False).status_code


def rq_state(redis: RedisServer) -> str:
    """Where RQ's jobs are (for a failure's message): queued, taken and not started, started, failed, scheduled."""
    from redis import Redis
    from rq import Queue

    try:
        queue = Queue("default", connection=Redis.from_url(redis.url))
        failed = queue.failed_job_registry
        why = [str(queue.fetch_job(job_id).exc_info or "").strip().splitlines()[-1:] for job_id in
               failed.get_job_ids()[:3]]
        return (f"queued {queue.count}, taken {queue.connection.llen(queue.intermediate_queue_key)}, "
                f"started {queue.started_job_registry.count}, failed {failed.count} {why}, "
                f"scheduled {queue.scheduled_job_registry.count}")
    except Exception as exc:  # noqa: BLE001 - only a failure's message
        return f"RQ's state unknown ({exc})"


def statuses_of(app, tenant_id: int) -> Counter:
    from saas.messaging.models import Message

    with app.app_context():
        rows = db.session.execute(select(Message.status, func.count()).where(Message.tenant_id == tenant_id)
                                  .group_by(Message.status)).all()
        db.session.remove()
    return Counter(dict(rows))


@pytest.fixture
def served(app, backend, mailbox, tmp_path):
    """(base URL, web, worker, redis): the Procfile's web and worker on the test database and a Redis of its own."""
    if backend != "postgresql":
        pytest.skip("the outage is rehearsed on PostgreSQL, with the real gunicorn and worker processes")
    redis = PersistentRedis(tmp_path).start()
    port = free_port()
    env = app_environment(app.config["SQLALCHEMY_DATABASE_URI"], redis.url, mailbox.url,
                          PORT=str(port), WEB_CONCURRENCY="1", PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                          WHATSAPP_PAIR_RATE_BURST="0", MAIL_RETRY_SECONDS="0.01",
                          GUNICORN_CMD_ARGS=f"--control-socket {tmp_path / 'web.ctl'}")
    web, worker = ProcfileProcess("web", env, tmp_path), ProcfileProcess("worker", env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(base), 30, web.log)
        yield base, web, worker, redis
    finally:
        web.stop()
        worker.stop()
        redis.stop()


def answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/login", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_redis_stopped_mid_load_costs_no_request_and_no_job(app, served, mailbox):
    base, web, worker, redis = served
    with app.app_context():
        busy = factories.make_tenant("enterprise", email="owner@busy.example.com")
        busy_key, busy_number, busy_id = factories.make_key(busy), factories.sandbox_number(busy), busy.id
        limited = factories.make_tenant("free", email="owner@limited.example.com")
        limited_key = factories.make_key(limited)
        db.session.remove()
    stream = Stream(base, busy_key, busy_number).start()
    try:
        wait_until(lambda: len(stream.sent) >= 10, 30, web.log)
        wait_until(lambda: "run_batch" in worker.log(), 30, worker.log)  # the walks go through the worker

        # The stop: what Redis holds stays there (it persists); sends pause while it goes down.
        stream.sending.clear()
        redis.stop()
        stream.phase = "down"
        stream.sending.set()
        sent_before = len(stream.sent)
        wait_until(lambda: len(stream.sent) >= sent_before + 20, 30, web.log)
        assert forgot_password(base, "owner@busy.example.com") == 303
        # A plan's limit still holds, counted in the web process (free: 60 a minute).
        limited_statuses = [requests.get(f"{base}/api/v1/usage", timeout=10,
                                         headers={"Authorization": f"Bearer {limited_key}"}).status_code
                            for _ in range(61)]
        assert limited_statuses == [200] * 60 + [429]
        wait_until(lambda: mailbox.to("owner@busy.example.com", "Reset your password"), 30, web.log)

        stream.sending.clear()
        redis.start()
        stream.phase = "back"
        worker_jobs_before = worker.log().count("run_batch")
        stream.sending.set()
        sent_after = len(stream.sent)
        wait_until(lambda: len(stream.sent) >= sent_after + 10, 30, web.log)
        # The worker, the same process all along, takes jobs again.
        wait_until(lambda: worker.log().count("run_batch") > worker_jobs_before, 60, worker.log)
        # The web process puts its jobs on Redis again once it has found it back (it tries once a second).
        wait_until(lambda: "follow-up jobs use it again" in web.log(), 30, web.log)
        assert forgot_password(base, "owner@limited.example.com") == 303
        wait_until(lambda: mailbox.to("owner@limited.example.com", "Reset your password"), 60,
                   lambda: f"{rq_state(redis)}\n{worker.log()}")
    finally:
        stream.stop()
    assert worker.running() and web.running(), worker.log()

    everything = sum(stream.statuses.values(), Counter())
    assert set(everything) == {200}, stream.statuses
    assert stream.statuses["down"][200] >= 20 and stream.statuses["back"][200] >= 10
    # Said once per outage, not once per request: one web process, one outage.
    assert web.log().count("Redis unreachable: rate-limit counts") == 1, web.log()
    assert web.log().count("Redis unreachable: follow-up jobs") == 1, web.log()
    # The worker ran the mail sent after Redis came back (its log may reach the file a moment after the mail).
    wait_until(lambda: "saas.mail.send_one" in worker.log(), 30, worker.log)
    # Nothing lost: every send answered is a message, and each one's receipts all came (some through the worker,
    # those of the outage in the web process).
    wait_until(lambda: statuses_of(app, busy_id) == Counter({"read": len(stream.sent)}), 60,
               lambda: f"{statuses_of(app, busy_id)} for {len(stream.sent)} sends; RQ: {rq_state(redis)}\n"
                       f"{worker.log()[-3000:]}")
