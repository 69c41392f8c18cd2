"""The database failing under the send path: once WhatsApp has taken a message it is recorded accepted
and billed, whatever the database does; every answer is 503 at worst, never 500.

PostgreSQL tests kill this test database's own connections (pg_terminate_backend) or put a TCP proxy
in front of the server and cut it; the server itself is never touched.
"""
from __future__ import annotations

import os
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from saas import cache, create_app
from saas.extensions import db
from saas.messaging.outbound import send_service
from saas.messaging.models import Message
from saas.messaging.outbound.transports import SandboxTransport
from tests.factories import call_send, sender, service_with, settle, usage_values
from tests.messaging.live import BILLED_ONCE, CONTACT, text_payload
from tests.metering.test_concurrency import pg_only  # noqa: F401
from tests.metering.test_failures import assert_usage_equals_rows
from tests.tcp_proxy import TcpProxy


def kill_our_connections(app) -> int:
    """Terminate every other connection to this test's own database (the app's pooled ones included)."""
    with app.app_context():
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as killer:
        return killer.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


def out_messages(app, tenant_id) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(select(Message).where(Message.tenant_id == tenant_id,
                                                             Message.direction == "out").order_by(Message.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def test_a_connection_killed_while_whatsapp_answers_is_accepted_on_a_new_one_and_billed(
        pg_only, app, graph, acme, number):
    killed = []
    graph.while_sending(lambda body: killed.append(kill_our_connections(app)))
    response = acme.send(number=number[0])
    assert killed and killed[0] >= 1
    assert response.status_code == 200, response.get_json()
    [message] = out_messages(app, acme.tenant_id)
    assert (message.status, message.wa_message_id) == ("accepted", response.get_json()["messages"][0]["id"])
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert_usage_equals_rows(app)


class SessionAwayForAWhile:
    """The app's session, except that the database is unreachable for the next ``times`` steps once
    the transport has sent (SQLite has no connection to kill; this is the same fault as the driver
    reports it)."""

    def __init__(self, session, times: int):
        self.session = session
        self.away = 0
        self.times = times

    def __getattr__(self, name):
        return getattr(self.session, name)

    def connection(self, **kwargs):
        if self.away:
            self.away -= 1
            raise OperationalError("UPDATE messages", {}, Exception("server closed the connection unexpectedly"))
        return self.session.connection(**kwargs)


def send_with_the_database_away(acme, times: int, **collaborators):
    """In an app context: a send WhatsApp (the sandbox, answering as a live number does) took, the database
    unreachable for the next ``times`` steps after; returns (the send's outcome, the session)."""
    session = SessionAwayForAWhile(db.session, times=times)

    class LikeLive(SandboxTransport):
        side_effect_free = False

        def send(self, number, payload):
            result = super().send(number, payload)
            session.away = session.times
            return result

    outcome = call_send(service_with(LikeLive(), session=session, **collaborators), acme, text_payload(CONTACT, "hi"))
    return outcome, session


def test_a_database_away_for_a_moment_after_sending_is_waited_for_and_the_send_billed(app, client):
    acme = sender(client, "starter")
    with app.app_context():
        outcome, session = send_with_the_database_away(acme, times=3)
        assert session.away == 0  # every failing try was used up, then the accept went through
        db.session.remove()
    [message] = out_messages(app, acme.tenant_id)
    assert (message.status, message.wa_message_id) == ("accepted", outcome.wa_message_id)
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert_usage_equals_rows(app)


@pytest.fixture
def through_proxy(app, graph, tmp_path):
    """A second web process's app reaching this test's PostgreSQL database through a TCP proxy the test
    cuts; yields (that app, the proxy). Its accept journal is a directory of this test's own."""
    with app.app_context():
        url = db.engine.url
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = create_app({
        "TESTING": True, "SERVER_NAME": None, "HOUSEKEEPING": False, "WHATSAPP_PAIR_RATE_BURST": 0,
        "SQLALCHEMY_DATABASE_URI": url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        "WHATSAPP_GRAPH_URL": graph.url, "ACCEPT_JOURNAL_DIR": str(tmp_path / "journal"),
        "DATABASE_RETRY_SECONDS": 1.0})
    yield proxied, proxy
    proxy.stop()
    proxied.extensions["background"].join()
    with proxied.app_context():
        db.engine.dispose()


def test_a_database_unreachable_for_a_while_after_whatsapp_took_the_send(
        pg_only, app, graph, acme, number, through_proxy, runner):
    proxied, proxy = through_proxy
    graph.while_sending(lambda body: proxy.cut())
    response = proxied.test_client().post(f"/v23.0/{number[0]}/messages", headers=acme.headers,
                                          json=text_payload(CONTACT))
    # WhatsApp took it: the tenant gets WhatsApp's answer, and the accept waits in the journal.
    assert response.status_code == 200, response.get_json()
    wamid = response.get_json()["messages"][0]["id"]
    assert graph.answers[-1]["messages"][0]["id"] == wamid
    assert [m.status for m in out_messages(app, acme.tenant_id)] == ["pending"]
    assert len(os.listdir(proxied.config["ACCEPT_JOURNAL_DIR"])) == 1

    proxy.restore()
    with proxied.app_context():
        # Recovery writes what was kept before it settles anything: nothing is settled as failed.
        assert send_service(proxied).recover_interrupted(older_than=timedelta(0)) == 0
        db.session.remove()
    [message] = out_messages(app, acme.tenant_id)
    assert (message.status, message.wa_message_id) == ("accepted", wamid)
    assert os.listdir(proxied.config["ACCEPT_JOURNAL_DIR"]) == []
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE
    assert runner.invoke(args=["usage", "check"]).exit_code == 0


def test_under_v1_a_send_whose_message_cannot_be_read_back_answers_503_and_is_still_billed(
        pg_only, app, graph, acme, number, through_proxy):
    proxied, proxy = through_proxy
    graph.while_sending(lambda body: proxy.cut())
    response = proxied.test_client().post("/api/v1/messages", headers=acme.headers,
                                          json={**text_payload(CONTACT), "phone_number_id": number[0]})
    # The v1 answer is the message resource, read back from the database: at worst 503, never 500.
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "service_unavailable"
    proxy.restore()
    with proxied.app_context():
        assert send_service(proxied).write_kept_accepts() == 1
        db.session.remove()
    [message] = out_messages(app, acme.tenant_id)
    assert (message.status, message.wa_message_id) == ("accepted", graph.answers[-1]["messages"][0]["id"])
    assert usage_values(app, acme.tenant_id) == BILLED_ONCE


@pytest.mark.parametrize("path", ["/v23.0/{number}/messages", "/api/v1/messages"])
def test_a_database_that_stays_away_answers_503_not_500_and_sends_nothing(
        pg_only, app, graph, acme, number, through_proxy, path):
    proxied, proxy = through_proxy
    cache.clear_all()  # nothing of the key is remembered: the request must load it
    proxy.cut()
    response = proxied.test_client().post(path.format(number=number[0]), headers=acme.headers,
                                          json={**text_payload(CONTACT), "phone_number_id": number[0]})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    error = response.get_json()["error"]
    assert (error.get("reason") or error.get("code")) == "service_unavailable"
    assert graph.sends() == []


def test_an_idempotency_key_lookup_on_a_dropped_connection_is_tried_on_a_new_one(pg_only, app, graph, acme, number):
    assert acme.send(number=number[0]).status_code == 200  # the key, tenant and number are remembered
    settle(app)  # no follow-up meets the dead connections first
    kill_our_connections(app)
    response = acme.send(number=number[0], idempotency_key="order-9")
    assert response.status_code == 200, response.get_json()
    again = acme.send(number=number[0], idempotency_key="order-9")
    assert again.get_json() == response.get_json()
    assert len(graph.sends()) == 2


def test_an_api_key_loaded_on_a_dropped_connection_is_loaded_again_on_a_new_one(pg_only, app, graph, acme, number):
    assert acme.send(number=number[0]).status_code == 200
    settle(app)
    kill_our_connections(app)
    cache.clear_all()  # the next request loads the key from the database, on a dead connection
    response = acme.get("/api/v1/usage")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["messages"] == 1
