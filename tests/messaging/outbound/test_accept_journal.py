"""Accepts kept while the database is away: in Redis when there is one (shared by every process), in a
directory otherwise or when Redis is away too; written once the database is back, billed once.

Redis is the machine's server, database 12 (DEPLOY_CHECK_REDIS_URL), under a key of this test's own.
"""
from __future__ import annotations

import os
import secrets
import socket

import pytest
from redis import Redis
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.outbound.accept_journal import (
    AcceptJournal,
    DirectoryJournal,
    KeptAccept,
    RedisJournal,
    build,
    redis_journal,
)
from saas.messaging.models import Message
from saas.messaging.outbound.transports import SandboxTransport
from saas.timeutil import utcnow
from tests.factories import service_with, sender, usage_values
from tests.messaging.live import BILLED_ONCE
from tests.messaging.outbound.test_database_faults import send_with_the_database_away
from tests.metering.test_failures import assert_usage_equals_rows

REDIS_URL = os.environ.get("DEPLOY_CHECK_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture
def in_redis():
    redis = Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    journal = RedisJournal(redis, key=f"test:kept-accepts:{secrets.token_hex(6)}")
    yield journal
    redis.delete(journal.key)
    redis.close()


def unreachable_redis() -> RedisJournal:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    return redis_journal(f"redis://127.0.0.1:{closed}/12")


def send_while_the_database_is_away(app, acme, journal) -> str:
    """A send WhatsApp (the sandbox, answering as a live number does) took while the database stayed
    away past every retry; returns WhatsApp's id, as the tenant got it."""
    with app.app_context():
        outcome, _ = send_with_the_database_away(acme, times=1000, journal=journal)
        db.session.remove()
    return outcome.wa_message_id


def write_kept(app, journal) -> int:
    with app.app_context():
        written = service_with(SandboxTransport(), journal=journal).write_kept_accepts()
        db.session.remove()
    return written


def only_message(app, tenant_id) -> Message:
    with app.app_context():
        [message] = db.session.scalars(select(Message).where(Message.tenant_id == tenant_id))
        db.session.expunge(message)
        db.session.remove()
    return message


def test_an_accept_kept_in_redis_is_written_once_the_database_is_back(app, client, in_redis):
    acme = sender(client, "starter")
    journal = AcceptJournal([in_redis])
    wamid = send_while_the_database_is_away(app, acme, journal)
    assert only_message(app, acme.tenant_id).status == "pending"
    assert [a.wamid for a in in_redis.kept()] == [wamid]

    assert write_kept(app, journal) == 1
    message = only_message(app, acme.tenant_id)
    assert (message.status, message.wa_message_id) == ("accepted", wamid)
    assert in_redis.kept() == []
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert_usage_equals_rows(app)


def test_with_redis_away_too_the_accept_is_kept_in_the_directory(app, client, tmp_path):
    acme = sender(client, "starter")
    directory = DirectoryJournal(tmp_path / "journal")
    journal = AcceptJournal([unreachable_redis(), directory])
    wamid = send_while_the_database_is_away(app, acme, journal)
    assert [a.wamid for a in directory.kept()] == [wamid]

    assert write_kept(app, journal) == 1
    assert only_message(app, acme.tenant_id).wa_message_id == wamid
    assert list((tmp_path / "journal").iterdir()) == []
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE


def test_an_accept_written_twice_bills_once(app, client, tmp_path):
    acme = sender(client, "starter")
    directory = DirectoryJournal(tmp_path / "journal")
    wamid = send_while_the_database_is_away(app, acme, AcceptJournal([directory]))
    [kept] = directory.kept()
    # Two processes replaying the same kept accept at once, or a replay after the file was left behind.
    directory.keep(kept)
    assert write_kept(app, AcceptJournal([directory])) == 1
    directory.keep(kept)
    assert write_kept(app, AcceptJournal([directory])) == 1
    assert only_message(app, acme.tenant_id).wa_message_id == wamid
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert_usage_equals_rows(app)


def test_a_journal_that_cannot_keep_the_accept_answers_503_and_leaves_the_send_pending(app, client, tmp_path):
    from saas.database import DatabaseUnavailable

    acme = sender(client, "starter")
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the journal's directory should be")
    with pytest.raises(DatabaseUnavailable):
        send_while_the_database_is_away(app, acme, AcceptJournal([unreachable_redis(), DirectoryJournal(blocked)]))
    assert only_message(app, acme.tenant_id).status == "pending"


def test_a_kept_accept_survives_as_written_and_is_read_back(tmp_path):
    accept = KeptAccept(7, 42, "wamid.HBgL" + "A" * 40, "accepted", {"messages": [{"id": "wamid.x"}]},
                        utcnow().replace(microsecond=123456))
    directory = DirectoryJournal(tmp_path)
    directory.keep(accept)
    assert directory.kept() == [accept]
    assert [p.name for p in tmp_path.iterdir()] == ["42.json"]  # nothing partial left behind
    directory.forget(accept)
    assert directory.kept() == []


def test_the_app_keeps_accepts_in_redis_first_when_it_has_one(tmp_path):
    journal = build({"REDIS_URL": REDIS_URL, "ACCEPT_JOURNAL_DIR": str(tmp_path)})
    assert [type(store) for store in journal.stores] == [RedisJournal, DirectoryJournal]
    assert [type(store) for store in build({"ACCEPT_JOURNAL_DIR": str(tmp_path)}).stores] == [DirectoryJournal]
