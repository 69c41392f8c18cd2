"""Live updates of the inbox: which threads changed, pushed to the tenant's open pages as Server-Sent Events.

A thread changed is a row whose ``updated_at`` moved: the database is the truth, and a stream only ever
reports threads of its own tenant read from it (a wake-up names the tenant's channel, never carries data).
With REDIS_URL, the consumers publish a wake-up on ``inbox:<tenant id>`` and each stream waits on it (and
reads the database again a moment later, as the publishing transaction may not have committed when it
woke); without Redis, each stream reads the database every INBOX_POLL_SECONDS. Either way a stream sends a
heartbeat every INBOX_HEARTBEAT_SECONDS, holds no database connection between reads, and ends after
INBOX_STREAM_SECONDS (the browser's EventSource reconnects), so streams never pin a gevent worker or a
pooled connection for long.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from saas.inbox.models import Thread
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

CHANNEL = "inbox:{tenant_id}"
# Commits are not seen in the order their timestamps were taken: each read looks back this far.
OVERLAP = timedelta(seconds=5)
RECHECK_SECONDS = 1.0


class LiveUpdates:
    """Built by the factory: ``notify`` for the consumers, ``stream`` for the portal's SSE view."""

    def __init__(self, *, redis=None, poll_seconds: float = 2.0, heartbeat_seconds: float = 15.0,
                 stream_seconds: float = 25.0, clock=time.monotonic, sleep=time.sleep):
        self.redis = redis
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.stream_seconds = stream_seconds
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def from_config(cls, config) -> "LiveUpdates":
        redis = None
        if config.get("REDIS_URL"):
            from redis import Redis

            from saas.outages import redis_client_options

            redis = Redis.from_url(config["REDIS_URL"], **redis_client_options(config.get("REDIS_OPTIONS", {})))
        return cls(redis=redis, poll_seconds=config["INBOX_POLL_SECONDS"],
                   heartbeat_seconds=config["INBOX_HEARTBEAT_SECONDS"], stream_seconds=config["INBOX_STREAM_SECONDS"])

    def notify(self, tenant_ids) -> None:
        """Wake the tenants' streams (Redis only; without it they poll). Never raises: a lost wake-up is
        caught by the stream's next read."""
        if self.redis is None:
            return
        for tenant_id in set(tenant_ids):
            try:
                self.redis.publish(CHANNEL.format(tenant_id=tenant_id), "1")
            except Exception:
                log.warning("inbox live update not published", exc_info=True)

    def stream(self, tenant_id: int, session, *, since: datetime | None = None):
        """The SSE lines for ``tenant_id``: ``event: thread`` with the id of each thread that changed after
        ``since`` (now by default), heartbeats, then the end. ``session`` is read briefly each time, released
        between reads, and closed when the stream ends."""
        reader = _Reader(tenant_id, session, since or utcnow())
        subscription = self._subscribe(tenant_id)
        started = last_beat = self.clock()
        recheck_at = None
        yield "retry: 2000\n\n"
        try:
            while self.clock() - started < self.stream_seconds:
                now = self.clock()
                if subscription is not None:
                    woke = self._wait(subscription, min(self.heartbeat_seconds, self.stream_seconds - (now - started),
                                                        (recheck_at - now) if recheck_at else self.heartbeat_seconds))
                    recheck_at = self.clock() + RECHECK_SECONDS if woke else None
                else:
                    self.sleep(max(0.0, min(self.poll_seconds, self.stream_seconds - (now - started))))
                yield from _events(reader)
                if self.clock() - last_beat >= self.heartbeat_seconds:
                    last_beat = self.clock()
                    yield ": heartbeat\n\n"
            # A last read: what changed while this stream was busy is told before it ends.
            yield from _events(reader)
        finally:
            session.close()
            if subscription is not None:
                try:
                    subscription.close()
                except Exception:
                    log.debug("closing an inbox subscription failed", exc_info=True)

    def _subscribe(self, tenant_id: int):
        if self.redis is None:
            return None
        try:
            subscription = self.redis.pubsub(ignore_subscribe_messages=True)
            subscription.subscribe(CHANNEL.format(tenant_id=tenant_id))
            return subscription
        except Exception:
            log.warning("inbox live updates fall back to polling: Redis refused the subscription", exc_info=True)
            return None

    def _wait(self, subscription, seconds: float) -> bool:
        try:
            return subscription.get_message(timeout=max(0.01, seconds)) is not None
        except Exception:
            log.warning("inbox live updates: Redis went away; polling", exc_info=True)
            self.sleep(max(0.0, min(self.poll_seconds, seconds)))
            return True


def _events(reader):
    for thread_id in reader.changed():
        yield f"event: thread\ndata: {json.dumps({'thread_id': thread_id})}\n\n"


class _Reader:
    """Reads which of a tenant's threads changed since the last read, each change once."""

    def __init__(self, tenant_id: int, session, since: datetime):
        self.tenant_id = tenant_id
        self.session = session
        self.cursor = since
        self.sent: dict[int, datetime] = {}

    def changed(self) -> list[int]:
        try:
            rows = self.session.execute(select(Thread.id, Thread.updated_at).where(
                Thread.tenant_id == self.tenant_id, Thread.updated_at > self.cursor - OVERLAP)
                .order_by(Thread.updated_at).limit(200)).all()
        finally:
            self.session.rollback()  # no connection held while the stream waits
        fresh = [row for row in rows if row.updated_at > self.cursor or self.sent.get(row.id) != row.updated_at]
        fresh = [row for row in fresh if self.sent.get(row.id) != row.updated_at]
        for row in fresh:
            self.sent[row.id] = row.updated_at
            self.cursor = max(self.cursor, row.updated_at)
        if len(self.sent) > 1000:
            self.sent = {k: v for k, v in self.sent.items() if v > self.cursor - OVERLAP}
        return [row.id for row in fresh]


def for_app(app) -> LiveUpdates:
    """The app's LiveUpdates, built from its settings on first use."""
    live = app.extensions.get("inbox_live")
    if live is None:
        live = app.extensions["inbox_live"] = LiveUpdates.from_config(app.config)
    return live
