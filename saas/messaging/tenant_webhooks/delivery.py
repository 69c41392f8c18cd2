"""Sending deliveries to tenants' webhooks: signed, in order per message, retried, then dead.

Every process's housekeeping calls ``deliver_due`` about every second. It
claims the deliveries that are due and at the head of their message's
sequence (no earlier event of that message still pending), leases them (a
claimed delivery is not due again until the lease ends, so a process that
dies mid-post only delays it), and posts them from a small pool of threads,
so a slow endpoint never holds up the background queue. Each outcome is one
short transaction: delivered (any 2xx), or retried on WEBHOOK_RETRY_SCHEDULE,
or dead after the last try. Delivery is at least once: a receiver
deduplicates on the event (a status's id and status, a message's id).

The post itself: the URL's host is resolved, every address checked (see
saas.messaging.tenant_webhooks.endpoints.resolve), and the connection made to the checked
address, so DNS cannot swap in another between check and connect. Connect
timeout WEBHOOK_CONNECT_TIMEOUT, read timeout WEBHOOK_READ_TIMEOUT; redirects
are not followed (a 3xx is a failed try).
"""
from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import exists, insert, select, update
from sqlalchemy.orm import aliased

from saas.extensions import db
from saas.messaging.tenant_webhooks import endpoints
from saas.messaging.tenant_webhooks.forwarding import body_of
from saas.messaging.models import (
    DELIVERY_DEAD, DELIVERY_DELIVERED, DELIVERY_PENDING, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
)
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

USER_AGENT = "Relay-Webhooks/1.0"
# How much of an endpoint's answer is read, and kept as the last error.
ANSWER_BYTES = 1024
ERROR_LENGTH = 500


@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: int
    attempt: int
    payload: dict
    url: str
    secret_encrypted: str


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def schedule() -> list[int]:
    """Seconds to wait after each failed try; one try more than there are waits."""
    return list(current_app.config["WEBHOOK_RETRY_SCHEDULE"])


def _lease(config) -> timedelta:
    return timedelta(seconds=3 * (config["WEBHOOK_CONNECT_TIMEOUT"] + config["WEBHOOK_READ_TIMEOUT"]) + 30)


class _Pool:
    """The process's posting threads, and how many deliveries they hold (made again after a fork)."""

    def __init__(self, size: int):
        self.size = size
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="webhook-post")
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.in_flight = 0

    def room(self) -> int:
        with self.lock:
            return max(0, 2 * self.size - self.in_flight)

    def taken(self, n: int) -> None:
        with self.lock:
            self.in_flight += n

    def done(self, _future=None) -> None:
        with self.lock:
            self.in_flight -= 1


def _pool(app) -> _Pool:
    pool = app.extensions.get("webhook_pool")
    if pool is None or pool.pid != os.getpid():
        pool = app.extensions["webhook_pool"] = _Pool(app.config["WEBHOOK_CONCURRENCY"])
    return pool


def deliver_due(*, now: datetime | None = None, wait_for_answers: bool = False, limit: int | None = None) -> int:
    """Claim the due deliveries and post them; returns how many were claimed.

    ``wait_for_answers`` returns only once every claimed delivery has its
    outcome recorded (the CLI and tests); otherwise the posts finish in the
    background. Safe to run in any number of processes at once.
    """
    app = current_app._get_current_object()
    pool = _pool(app)
    now = now or utcnow()
    room = pool.room() if limit is None else limit
    if room == 0:
        return 0
    claimed = _claim(now, room, _lease(app.config))
    if not claimed:
        return 0
    pool.taken(len(claimed))
    futures = []
    for delivery in claimed:
        future = pool.executor.submit(_post_and_record, app, delivery, now)
        future.add_done_callback(pool.done)
        futures.append(future)
    if wait_for_answers:
        wait(futures)
    return len(claimed)


def _claim(now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries at the head of their sequence. Commits."""
    d, earlier, ep = WebhookDelivery, aliased(WebhookDelivery), WebhookEndpoint
    head = ~exists().where(earlier.tenant_id == d.tenant_id, earlier.endpoint_id == d.endpoint_id,
                           earlier.sequence_key == d.sequence_key, earlier.state == DELIVERY_PENDING,
                           earlier.id < d.id)
    session = db.session
    try:
        conn = session.connection()
        ids = conn.execute(
            select(d.id).join(ep, (ep.id == d.endpoint_id) & (ep.tenant_id == d.tenant_id))
            .where(d.state == DELIVERY_PENDING, d.next_attempt_at <= now, ep.active.is_(True), head)
            .order_by(d.next_attempt_at, d.id).limit(limit)
            .with_for_update(of=d, skip_locked=True)).scalars().all()
        if not ids:
            session.rollback()
            return []
        rows = conn.execute(
            update(d).where(d.id.in_(ids), d.state == DELIVERY_PENDING)
            .values(attempts=d.attempts + 1, next_attempt_at=now + lease, last_attempt_at=now)
            .returning(d.id, d.tenant_id, d.endpoint_id, d.attempts, d.payload)).all()
        targets = {row.id: row for row in conn.execute(
            select(ep.id, ep.url, ep.signing_secret_encrypted).where(ep.id.in_({r.endpoint_id for r in rows})))}
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return [Claimed(r.id, r.tenant_id, r.attempts, r.payload, targets[r.endpoint_id].url,
                    targets[r.endpoint_id].signing_secret_encrypted) for r in sorted(rows, key=lambda r: r.id)]


def _post_and_record(app, delivery: Claimed, now: datetime) -> None:
    with app.app_context():
        try:
            outcome = post(delivery)
            record_outcome(delivery, outcome, now)
        except Exception:
            # The lease runs out and the delivery is tried again; never lose the thread.
            log.exception("webhook delivery %s could not be recorded", delivery.id)
            db.session.rollback()
        finally:
            db.session.remove()


def post(delivery: Claimed) -> Outcome:
    """POST the delivery's payload, signed with the endpoint's secret; what came of it."""
    config = current_app.config
    body = body_of(delivery.payload)
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        secret = endpoints.signing_secret(delivery.secret_encrypted)
    except RuntimeError as exc:  # TOKEN_ENCRYPTION_KEY changed: a failed try, like any other
        return Outcome(None, f"cannot sign: {exc}"[:ERROR_LENGTH], took())
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Hub-Signature-256": endpoints.signature(secret, body),
               "X-Relay-Delivery": str(delivery.id), "X-Relay-Attempt": str(delivery.attempt)}
    try:
        host, port, address = endpoints.resolve(
            delivery.url, allow_private_targets=bool(config.get("WEBHOOK_ALLOW_PRIVATE_TARGETS")))
        parts = urlsplit(delivery.url)
        if parts.scheme == "http" and endpoints.https_required():
            raise endpoints.TargetRefused("https is required")
        connection = _connection(parts.scheme, host, port, address, config["WEBHOOK_CONNECT_TIMEOUT"],
                                 config["WEBHOOK_READ_TIMEOUT"])
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(ANSWER_BYTES)
        finally:
            connection.close()
    except endpoints.TargetRefused as exc:
        return Outcome(None, f"refused: {exc}"[:ERROR_LENGTH], took())
    except _ConnectTimeout:
        return Outcome(None, f"no connection within {config['WEBHOOK_CONNECT_TIMEOUT']:g} s", took())
    except (TimeoutError, socket.timeout):
        return Outcome(None, f"no answer within {config['WEBHOOK_READ_TIMEOUT']:g} s", took())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH], took())
    status = response.status
    if 200 <= status < 300:
        return Outcome(status, None, took())
    text = answer.decode("utf-8", "replace").replace("\x00", "").strip()
    reason = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return Outcome(status, (f"{reason}: {text}" if text else reason)[:ERROR_LENGTH], took())


class _ConnectTimeout(Exception):
    pass


def _pinned_socket(address: str, port: int, connect_timeout: float, read_timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((address, port), timeout=connect_timeout)
    except (TimeoutError, socket.timeout):
        raise _ConnectTimeout() from None
    sock.settimeout(read_timeout)
    return sock


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a host, over a connection to an address already checked."""

    def __init__(self, host, port, address, connect_timeout, read_timeout):
        super().__init__(host, port, timeout=read_timeout)
        self._address, self._connect_timeout = address, connect_timeout

    def connect(self):
        self.sock = _pinned_socket(self._address, self.port, self._connect_timeout, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a host (its certificate checked against the host name), over an address already checked."""

    def __init__(self, host, port, address, connect_timeout, read_timeout):
        super().__init__(host, port, timeout=read_timeout, context=ssl.create_default_context())
        self._address, self._connect_timeout = address, connect_timeout

    def connect(self):
        sock = _pinned_socket(self._address, self.port, self._connect_timeout, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _connection(scheme, host, port, address, connect_timeout, read_timeout):
    cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    return cls(host, port, address, connect_timeout, read_timeout)


def record_outcome(delivery: Claimed, outcome: Outcome, now: datetime) -> str:
    """Write a try's outcome: delivered, due again after the schedule's wait, or dead. Commits.

    Returns the delivery's state.
    """
    waits = schedule()
    if outcome.delivered:
        values = {"state": DELIVERY_DELIVERED, "delivered_at": now, "next_attempt_at": None}
    elif delivery.attempt > len(waits):
        values = {"state": DELIVERY_DEAD, "dead_at": now, "next_attempt_at": None}
    else:
        values = {"next_attempt_at": now + timedelta(seconds=waits[delivery.attempt - 1])}
    values.update(last_status=outcome.status, last_error=outcome.error)
    session = db.session
    try:
        conn = session.connection()
        conn.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == delivery.id, WebhookDelivery.tenant_id == delivery.tenant_id,
            WebhookDelivery.state == DELIVERY_PENDING, WebhookDelivery.attempts == delivery.attempt).values(**values))
        conn.execute(insert(WebhookAttempt).values(
            tenant_id=delivery.tenant_id, delivery_id=delivery.id, number=delivery.attempt, attempted_at=now,
            status=outcome.status, error=outcome.error, duration_ms=outcome.duration_ms))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    state = values.get("state", DELIVERY_PENDING)
    if not outcome.delivered:
        log.warning("webhook delivery %s failed (try %s, now %s): %s", delivery.id, delivery.attempt, state,
                    outcome.error, extra={"tenant_id": delivery.tenant_id})
    return state
