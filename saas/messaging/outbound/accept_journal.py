"""Accepts kept outside the database while it cannot be reached, written once it is back.

Once WhatsApp has taken a message it is recorded accepted and billed,
whatever the database does. The send path tries the accept again on new
connections (saas.database.Reconnecting); when the database stays out of
reach past that, the accept is kept here, the tenant gets WhatsApp's answer,
and the accept is written later (``SendService.write_kept_accepts``) by each
process's housekeeping, and by recovery before it settles anything as
interrupted: a kept accept is never settled as failed.

Kept in Redis (one hash shared by every process) when REDIS_URL is set, and
in a directory of small files (ACCEPT_JOURNAL_DIR, one per accept, written
whole and synced) otherwise, or when Redis fails too. Writing a kept accept
is idempotent, so processes replaying at the same time do no harm.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

REDIS_KEY = "relay:kept-accepts"


class JournalUnavailable(Exception):
    """No journal could keep the accept (Redis and the directory both failed)."""


@dataclass(frozen=True)
class KeptAccept:
    """WhatsApp's answer to one send, as the accept writes it."""

    tenant_id: int
    message_id: int
    wamid: str
    message_status: str | None
    body: dict | None   # the answer kept for an Idempotency-Key (None without one)
    at: datetime        # when WhatsApp answered

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "at": self.at.isoformat()}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "KeptAccept":
        data = json.loads(raw)
        return cls(int(data["tenant_id"]), int(data["message_id"]), str(data["wamid"]), data.get("message_status"),
                   data.get("body"), datetime.fromisoformat(data["at"]))


class RedisJournal:
    """Kept accepts in one Redis hash, by message id: every process sees and replays them."""

    def __init__(self, redis, key: str = REDIS_KEY):
        self.redis = redis
        self.key = key

    def keep(self, accept: KeptAccept) -> None:
        self.redis.hset(self.key, str(accept.message_id), accept.to_json())

    def kept(self) -> list[KeptAccept]:
        return [KeptAccept.from_json(raw) for _, raw in sorted(self.redis.hgetall(self.key).items())]

    def forget(self, accept: KeptAccept) -> None:
        self.redis.hdel(self.key, str(accept.message_id))


class DirectoryJournal:
    """Kept accepts as files ``<message id>.json`` in one directory, each written whole or not at all."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def keep(self, accept: KeptAccept) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / f"{accept.message_id}.json"
        partial = self.path / f".{accept.message_id}.{uuid.uuid4().hex}.partial"
        with open(partial, "w", encoding="utf-8") as out:
            out.write(accept.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
        # The rename itself must survive a crash too.
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def kept(self) -> list[KeptAccept]:
        if not self.path.is_dir():
            return []
        accepts = []
        for file in sorted(self.path.glob("*.json")):
            try:
                accepts.append(KeptAccept.from_json(file.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue  # another process wrote and removed it meanwhile
            except (ValueError, KeyError, TypeError):
                log.error("unreadable kept accept %s left in place", file.name)
        return accepts

    def forget(self, accept: KeptAccept) -> None:
        (self.path / f"{accept.message_id}.json").unlink(missing_ok=True)


class AcceptJournal:
    """Where accepts wait for the database: the first of ``stores`` that takes one keeps it."""

    def __init__(self, stores: list):
        self.stores = stores

    def keep(self, accept: KeptAccept) -> None:
        """Keep ``accept`` durably; JournalUnavailable when no store could."""
        for store in self.stores:
            try:
                store.keep(accept)
            except Exception:
                log.exception("could not keep an accept in %s", type(store).__name__)
                continue
            log.warning("accept of message %s kept until the database is back", accept.message_id)
            return
        raise JournalUnavailable()

    def replay(self, write) -> int:
        """``write(accept)`` each kept accept, forgetting it once written; how many were written.

        A failing ``write`` (the database still away) stops the replay and
        propagates; the accept stays kept. A store that cannot be read is
        skipped for this run.
        """
        written = 0
        for store in self.stores:
            try:
                accepts = store.kept()
            except Exception:
                log.warning("kept accepts in %s could not be read", type(store).__name__, exc_info=True)
                continue
            for accept in accepts:
                write(accept)
                store.forget(accept)
                written += 1
        return written


def redis_journal(url: str, options: dict | None = None) -> RedisJournal:
    """A RedisJournal on ``url``. One try with short timeouts: a Redis that is away too must not hold
    the send that then falls back to the directory."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return RedisJournal(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0),
                                       **(options or {})))


def build(config) -> AcceptJournal:
    """The app's journal: Redis (with REDIS_URL) before the directory ACCEPT_JOURNAL_DIR."""
    stores: list = []
    if config.get("REDIS_URL"):
        stores.append(redis_journal(config["REDIS_URL"], config.get("REDIS_OPTIONS")))
    stores.append(DirectoryJournal(config["ACCEPT_JOURNAL_DIR"]))
    return AcceptJournal(stores)
