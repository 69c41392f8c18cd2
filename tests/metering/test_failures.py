"""Refusals racing successes, several processes, and sends interrupted anywhere.

The rules: a refused send is never billed; hard caps hold across processes;
a send interrupted at any step leaves usage equal to the rows once recovery
has run, and no message pending.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from saas.billing.catalog import plan_by_code
from saas.database import DatabaseUnavailable
from saas.errors import UpstreamError
from saas.extensions import db
from saas.messaging.outbound import send_service
from saas.messaging.outbound.billed import billed_units
from saas.metering.audit import audit_usage
from saas.messaging.models import Conversation, Message
from saas.metering.services import Metering
from tests import processes
from tests.factories import call_send, sender, service_with, set_quota, usage_values
from tests.metering.test_concurrency import THREADS, counter_values, pg_only, run_in_parallel  # noqa: F401

FAILING = "15550000131"  # the sandbox refuses every send to it (131026)


def text_to(acme, to):
    return lambda c: c.post(f"/v23.0/{acme.number}/messages", headers=acme.headers, json={
        "messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}}).status_code


def assert_usage_equals_rows(app, *, some_usage=True):
    with app.app_context():
        problems, checked = audit_usage(db.session, billed_units(db.session))
        pending = db.session.scalar(select(func.count()).select_from(Message).where(Message.status == "pending"))
        db.session.remove()
    assert problems == []
    if some_usage:
        assert checked > 0
    assert pending == 0


def parallel_two_phase_sends(app, acme, recipients):
    """Send to each recipient from THREADS threads at once through the path a live number takes."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(THREADS)

    def worker(chunk):
        outcomes = []
        with app.app_context():
            service = service_with(two_phase())
            barrier.wait()
            for to in chunk:
                try:
                    call_send(service, acme, {"messaging_product": "whatsapp", "to": to, "type": "text",
                                              "text": {"body": "hi"}})
                    outcomes.append(200)
                except UpstreamError:
                    outcomes.append(502)
                finally:
                    db.session.remove()
        return outcomes

    chunks = [recipients[i::THREADS] for i in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        return [status for statuses in pool.map(worker, chunks) for status in statuses]


PATHS = ["sandbox over HTTP", "metered first, then sent"]


def send_all(path, app, acme, recipients):
    if path == "sandbox over HTTP":
        return run_in_parallel(app, [text_to(acme, to) for to in recipients])
    return parallel_two_phase_sends(app, acme, recipients)


@pytest.mark.parametrize("path", PATHS)
def test_good_and_failing_recipients_in_parallel_bill_only_what_went_out(pg_only, app, client, path):
    acme = sender(client, "enterprise")
    good = [f"1555300{n:04d}" for n in range(8)]
    bad = ["15550000131", "15550000132", "15550000500"]
    statuses = send_all(path, app, acme, [good[(n // 2) % 8] if n % 2 else bad[(n // 2) % 3] for n in range(96)])
    assert statuses.count(200) == 48 and statuses.count(502) == 48, statuses
    values = counter_values(app, acme.tenant_id)
    assert values["messages"] == 48
    assert values["conversations"] == values["conversations.service"] == 8
    assert_usage_equals_rows(app)


@pytest.mark.parametrize("path", PATHS)
def test_many_parallel_refusals_into_one_window_leave_it_unbilled(pg_only, app, client, path):
    acme = sender(client, "enterprise")
    statuses = send_all(path, app, acme, [FAILING] * 64)
    assert statuses == [502] * 64
    values = counter_values(app, acme.tenant_id)
    assert values.get("conversations", 0) == 0 and values.get("messages", 0) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == 0
        db.session.remove()
    assert_usage_equals_rows(app, some_usage=False)


def test_two_processes_never_pass_the_hard_cap(pg_only, app, client):
    acme = sender(client)
    with app.app_context():
        set_quota("free", 20)
        plan_by_code("free").rate_limit_per_minute = 1000
        db.session.commit()
        url = str(db.engine.url.render_as_string(hide_password=False))
        db.session.remove()
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    start_at = time.time() + 4  # both processes are up and waiting by then
    children = [spawn.Process(target=processes.send_in_threads, args=(
        url, acme.number, acme.key, [f"1555400{p}{n:03d}" for n in range(32)], 4, start_at, out))
        for p in range(2)]
    for child in children:
        child.start()
    statuses = out.get(timeout=120) + out.get(timeout=120)
    for child in children:
        child.join(timeout=30)
    assert statuses.count(200) == 20 and statuses.count(402) == 44, statuses
    values = counter_values(app, acme.tenant_id)
    assert values["conversations"] == values["messages"] == 20
    assert_usage_equals_rows(app)


def test_a_worker_killed_mid_send_is_settled_unbilled_by_recovery(app, client):
    acme = sender(client, "starter")
    with app.app_context():
        url = str(db.engine.url.render_as_string(hide_password=False))
        db.session.remove()
    child = multiprocessing.get_context("spawn").Process(
        target=processes.send_and_hang, args=(url, acme.tenant_id, acme.number))
    child.start()
    try:
        deadline = time.time() + 60
        while usage_values(app, acme.tenant_id).get("messages", 0) == 0:
            assert time.time() < deadline, "the child never metered its send"
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    assert usage_values(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.service": 1}
    with app.app_context():
        assert send_service(app).recover_interrupted(older_than=timedelta(0)) == 1
        message = db.session.scalar(select(Message))
        assert (message.status, message.error_code) == ("failed", 131000)
        db.session.remove()
    assert usage_values(app, acme.tenant_id).get("messages", 0) == 0
    assert_usage_equals_rows(app)
    assert acme.send(to="15551230077").status_code == 200  # the window is free to open again


class Killed(BaseException):
    """What a worker being shut down raises through whatever it was doing."""


class DiesInTransport:
    mode = "sandbox"

    def send(self, number, payload):
        raise Killed()


class MeteringThatDies(Metering):
    """The process dies while the send's transaction is open."""

    def meter(self, conn, usage, **kwargs):
        super().meter(conn, usage, **kwargs)
        raise Killed()

    def meter_within(self, conn, *args):
        # The one-statement form commits with its statement: the process dies before it runs.
        raise Killed()


class MeteringWhoseConnectionDrops(Metering):
    """Meters, then the server ends the connection under the open transaction."""

    def meter(self, conn, usage, **kwargs):
        receipt = super().meter(conn, usage, **kwargs)
        self._drop(conn)
        return receipt

    def meter_within(self, conn, *args):
        # The one-statement form commits with its statement: the connection drops as it runs.
        self._drop(conn)
        return super().meter_within(conn, *args)

    @staticmethod
    def _drop(conn):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        else:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))


class SessionGoneAfterSending:
    """The app's session, except that the database is unreachable once the transport has sent."""

    def __init__(self, session):
        self.session = session
        self.gone = False

    def __getattr__(self, name):
        return getattr(self.session, name)

    def connection(self, **kwargs):
        if self.gone:
            raise OperationalError("UPDATE messages", {}, Exception("server closed the connection unexpectedly"))
        return self.session.connection(**kwargs)


def sends_then_database_goes(session):
    from saas.messaging.outbound.transports import SandboxTransport

    class LikeLiveThenGone(SandboxTransport):
        side_effect_free = False

        def send(self, number, payload):
            result = super().send(number, payload)
            session.gone = True
            return result

    return LikeLiveThenGone()


class EnqueueThatDies:
    def __call__(self, *args):
        raise Killed()


def sandbox():
    from saas.messaging.outbound.transports import SandboxTransport

    return SandboxTransport()


def two_phase():
    """The sandbox's answers through the path a live number takes: metered, sent, then accepted."""
    from saas.messaging.outbound.transports import SandboxTransport

    class LikeLive(SandboxTransport):
        side_effect_free = False

    return LikeLive()


# Each step, what the send raises (None: it answers), and whether the message went out.
CRASHES = {
    "inside the metering transaction": (
        lambda: {"transport": two_phase(), "metering": MeteringThatDies()}, Killed, False),
    "connection dropped before commit, every time": (
        lambda: {"transport": two_phase(), "metering": MeteringWhoseConnectionDrops()}, DatabaseUnavailable, False),
    "during the transport call": (lambda: {"transport": DiesInTransport()}, Killed, False),
    # WhatsApp took it: the accept the database refuses is kept, and written by recovery.
    "database gone at the accept": (lambda: {"session": "gone after sending"}, None, True),
    "after the accept, queuing follow-ups": (
        lambda: {"transport": two_phase(), "enqueue": EnqueueThatDies()}, Killed, True),
    "sandbox: inside the metering statement": (
        lambda: {"transport": sandbox(), "metering": MeteringThatDies()}, Killed, False),
    "sandbox: connection dropped in the statement, every time": (
        lambda: {"transport": sandbox(), "metering": MeteringWhoseConnectionDrops()}, DatabaseUnavailable, False),
    "sandbox: queuing follow-ups": (lambda: {"transport": sandbox(), "enqueue": EnqueueThatDies()}, Killed, True),
}


def crashing_service(step: str):
    """(the send service that crashes at ``step``, what the send raises, whether WhatsApp took it); in an app context."""
    make, raised, went_out = CRASHES[step]
    parts = make()
    if parts.pop("session", None):
        parts["session"] = SessionGoneAfterSending(db.session)
        parts["transport"] = sends_then_database_goes(parts["session"])
    return service_with(parts.pop("transport"), **parts), raised, went_out


@pytest.mark.parametrize("step", list(CRASHES))
def test_a_crash_at_any_step_counts_nothing_twice_and_leaves_nothing_pending(app, client, step):
    acme = sender(client, "starter")
    assert acme.send(to="15551230001").status_code == 200  # usage before the crash
    with app.app_context():
        service, raised, went_out = crashing_service(step)
        send = lambda: call_send(service, acme, {  # noqa: E731
            "messaging_product": "whatsapp", "to": "15551230002", "type": "text", "text": {"body": "crash"}})
        if raised is None:
            assert send().wa_message_id
        else:
            with pytest.raises(raised):
                send()
        db.session.remove()
    with app.app_context():
        send_service(app).recover_interrupted(older_than=timedelta(0))
        app.extensions["metering"].roll_up_all(db.session)
        db.session.remove()
    assert_usage_equals_rows(app)
    # A second recovery and roll-up change nothing.
    before = usage_values(app, acme.tenant_id)
    with app.app_context():
        assert send_service(app).recover_interrupted(older_than=timedelta(0)) == 0
        app.extensions["metering"].roll_up_all(db.session)
        db.session.remove()
    assert usage_values(app, acme.tenant_id) == before
    assert before["messages"] == 1 + went_out


def test_a_refused_send_is_never_billed_even_when_it_opened_a_window_others_joined(app, client):
    acme = sender(client, "starter")
    with app.app_context():
        service = service_with(two_phase())
        with pytest.raises(UpstreamError):
            call_send(service, acme, {"messaging_product": "whatsapp", "to": FAILING, "type": "text",
                                      "text": {"body": "x"}})
        db.session.remove()
    assert usage_values(app, acme.tenant_id).get("conversations", 0) == 0
    assert_usage_equals_rows(app, some_usage=False)


class SlowCounting(Metering):
    """Counts, then takes its time before writing: a wide-open race if opens were not serialised."""

    def _used(self, conn, *args):
        used = super()._used(conn, *args)
        time.sleep(0.05)
        return used


def race_sixteen_sends(app, who, prefix: str) -> list[str]:
    """Sixteen sends of ``who`` at once, each to its own contact, through SlowCounting: "sent" or "refused" each."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from saas.errors import QuotaExceeded
    from saas.messaging.outbound.transports import SandboxTransport

    barrier = threading.Barrier(16)

    def attempt(n):
        with app.app_context():
            service = service_with(SandboxTransport(), metering=SlowCounting())
            barrier.wait()
            try:
                call_send(service, who, {"messaging_product": "whatsapp", "to": f"{prefix}{n:04d}",
                                         "type": "text", "text": {"body": "hi"}})
                return "sent"
            except QuotaExceeded:
                return "refused"
            finally:
                db.session.remove()

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(attempt, range(16)))


def test_capped_opens_stay_exact_when_counting_is_slow(pg_only, app, client):
    acme = sender(client)
    with app.app_context():
        set_quota("free", 5)
        db.session.remove()
    outcomes = race_sixteen_sends(app, acme, "1555500")
    assert outcomes.count("sent") == 5 and outcomes.count("refused") == 11
    assert counter_values(app, acme.tenant_id)["conversations"] == 5
    assert_usage_equals_rows(app)


def test_a_connection_dropped_while_idle_in_the_pool_costs_no_send(pg_only, app, client):
    """The server ends every idle connection (a restart, a proxy's idle timeout); sends go on."""
    acme = sender(client, "starter")
    assert acme.send(to="15551230001").status_code == 200
    with app.app_context():
        pooled = db.engine.pool.checkedin()
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        db.session.remove()
    assert pooled >= 1
    import psycopg

    with psycopg.connect(url, autocommit=True) as outsider:
        outsider.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert [acme.send(to=f"155512300{n}").status_code for n in range(2, 6)] == [200] * 4
    assert usage_values(app, acme.tenant_id)["messages"] == 5
    assert_usage_equals_rows(app)
