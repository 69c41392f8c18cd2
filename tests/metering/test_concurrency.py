"""Metering under real parallel connections (PostgreSQL only: SQLite serialises writers)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from saas.billing.catalog import plan_by_code
from saas.extensions import db
from saas.messaging.models import Conversation, Message
from saas.metering.models import UsageCounter, UsageRecord
from tests.factories import sender, set_quota, usage_values

THREADS = 8


@pytest.fixture
def pg_only(backend):
    if backend != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL with real parallel connections")


def run_in_parallel(app, jobs):
    """Run callables on THREADS threads, each request on its own connection, all released at once."""
    barrier = threading.Barrier(THREADS)

    def worker(chunk):
        client = app.test_client()
        barrier.wait()
        return [job(client) for job in chunk]

    chunks = [jobs[i::THREADS] for i in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        return [r for rs in pool.map(worker, chunks) for r in rs]


def counter_values(app, tenant_id):
    """Usage after rolling every entry up: the counters alone must then be exact."""
    with app.app_context():
        app.extensions["metering"].roll_up_all(db.session)
        rows = db.session.execute(select(UsageCounter.metric, UsageCounter.value)
                                  .where(UsageCounter.tenant_id == tenant_id)).all()
        db.session.remove()
    values = dict(rows)
    assert values == usage_values(app, tenant_id)
    return values


def test_parallel_sends_meter_every_message_and_window_exactly_once(pg_only, app, client):
    acme = sender(client, "starter")
    contacts = [f"1555100{n:04d}" for n in range(50)]

    def send_to(contact, n):
        return lambda c: c.post(f"/v23.0/{acme.number}/messages", headers=acme.headers, json={
            "messaging_product": "whatsapp", "to": contact, "type": "text", "text": {"body": f"m{n}"}}).status_code

    statuses = run_in_parallel(app, [send_to(contacts[n % 50], n) for n in range(200)])
    assert statuses == [200] * 200

    values = counter_values(app, acme.tenant_id)
    with app.app_context():
        messages = db.session.scalar(select(func.count()).select_from(Message)
                                     .where(Message.tenant_id == acme.tenant_id))
        windows = db.session.scalar(select(func.count()).select_from(Conversation)
                                    .where(Conversation.tenant_id == acme.tenant_id))
        distinct_windows = db.session.scalar(select(func.count(func.distinct(Message.conversation_id)))
                                             .where(Message.tenant_id == acme.tenant_id))
        records = db.session.scalar(select(func.count()).select_from(UsageRecord))
        db.session.remove()
    assert messages == values["messages"] == 200
    assert windows == distinct_windows == values["conversations"] == values["conversations.service"] == 50
    assert records == 50


def test_parallel_sends_never_pass_the_hard_cap(pg_only, app, client):
    acme = sender(client)
    with app.app_context():
        set_quota("free", 20)
        plan_by_code("free").rate_limit_per_minute = 1000  # the cap is under test here, not the rate limit
        db.session.commit()
        db.session.remove()

    def send_to(n):
        return lambda c: c.post(f"/v23.0/{acme.number}/messages", headers=acme.headers, json={
            "messaging_product": "whatsapp", "to": f"1555200{n:04d}", "text": {"body": "hi"}}).status_code

    statuses = run_in_parallel(app, [send_to(n) for n in range(64)])
    assert statuses.count(200) == 20
    assert statuses.count(402) == 44
    values = counter_values(app, acme.tenant_id)
    assert values["conversations"] == values["messages"] == 20


def test_parallel_retries_with_one_idempotency_key_send_once(pg_only, app, client):
    acme = sender(client)
    body = {"messaging_product": "whatsapp", "to": "15551230001", "text": {"body": "once"}}

    def attempt(c):
        response = c.post(f"/v23.0/{acme.number}/messages", json=body,
                          headers={**acme.headers, "Idempotency-Key": "pay-1"})
        return response.status_code, response.get_json()

    results = run_in_parallel(app, [attempt] * 16)
    ok = [body for status, body in results if status == 200]
    assert ok, results
    assert all(status in (200, 409) for status, _ in results)
    assert len({b["messages"][0]["id"] for b in ok}) == 1
    values = counter_values(app, acme.tenant_id)
    assert values["messages"] == values["conversations"] == 1
