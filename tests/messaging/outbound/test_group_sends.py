"""Sandbox sends that arrive together are written together: one transaction of set-based statements for the
group, each request answered only once its own rows are committed, each with its own message, window and
usage (PostgreSQL, real parallel connections); their contacts' windows are read together for WhatsApp's rules."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from saas.extensions import db
from saas.inbox.models import Entry
from saas.messaging.models import Conversation, Message
from saas.metering.models import UsageRecord
from saas.outbox import OutboxEvent
from tests.factories import sender, settle, usage_values
from tests.messaging.outbound.test_group_accepts import statements_like
from tests.metering.test_concurrency import pg_only  # noqa: F401

SENDERS = 16


def send_together(app, acme, bodies):
    """POST each body from SENDERS threads released at once; the responses in the bodies' order."""
    barrier = threading.Barrier(SENDERS)

    def send(chunk):
        test_client = app.test_client()
        barrier.wait()
        return [(n, test_client.post(f"/v23.0/{acme.number}/messages", headers=acme.headers, json=body))
                for n, body in chunk]

    numbered = list(enumerate(bodies))
    with ThreadPoolExecutor(SENDERS) as pool:
        done = [r for rs in pool.map(send, [numbered[i::SENDERS] for i in range(SENDERS)]) for r in rs]
    return [response for _, response in sorted(done, key=lambda pair: pair[0])]


def text_to(contact: str, n: int = 0) -> dict:
    return {"messaging_product": "whatsapp", "to": contact, "type": "text", "text": {"body": f"hi {n}"}}


def test_sends_arriving_together_are_written_in_groups_each_with_its_own_rows(pg_only, app, client):
    acme = sender(client, "starter")  # the inbox wants send.settled: written in the groups' transactions
    contacts = [f"1555300{n:04d}" for n in range(SENDERS * 3)]
    inserts = statements_like(app, "INSERT INTO messages")
    reads = statements_like(app, "max(messages.created_at) FILTER")
    responses = send_together(app, acme, [text_to(contact) for contact in contacts])
    settle(app)

    assert [r.status_code for r in responses] == [200] * len(contacts)
    answered = {r.get_json()["contacts"][0]["wa_id"]: r.get_json()["messages"][0]["id"] for r in responses}
    with app.app_context():
        rows = db.session.execute(select(Message.wa_id, Message.wa_message_id, Message.conversation_id,
                                         Message.opened_conversation).where(
            Message.tenant_id == acme.tenant_id, Message.direction == "out")).all()
        windows = db.session.execute(select(Conversation.id, Conversation.contact).where(
            Conversation.tenant_id == acme.tenant_id)).all()
        records = db.session.scalar(select(func.count()).select_from(UsageRecord).where(
            UsageRecord.tenant_id == acme.tenant_id))
        entries = db.session.execute(select(Entry.wa_message_id).where(Entry.tenant_id == acme.tenant_id,
                                                                       Entry.direction == "out")).scalars().all()
        left = db.session.scalar(select(func.count()).select_from(OutboxEvent))
        db.session.remove()
    # Each request's answer names its own message, in its own newly opened window.
    assert {wa_id: wamid for wa_id, wamid, _, _ in rows} == answered
    assert sorted((contact, window) for window, contact in windows) == sorted(
        (wa_id, window) for wa_id, _, window, _ in rows)
    assert all(opened for *_, opened in rows)
    # Written in groups (a send that found no other writes itself alone): fewer message INSERTs and window
    # reads than sends.
    sizes = [len(params["wa_id"]) if isinstance(params.get("wa_id"), list) else 1 for params in inserts]
    assert sum(sizes) == len(contacts)
    assert max(sizes) > 1 and len(inserts) < len(contacts)
    assert len(reads) < len(contacts)
    values = usage_values(app, acme.tenant_id)
    assert values["messages"] == values["conversations"] == records == len(contacts)
    # Every send's send.settled reached the inbox.
    assert sorted(entries) == sorted(answered.values())
    assert left == 0


def test_sends_to_one_contact_together_share_one_window_billed_once(pg_only, app, client):
    acme = sender(client, "starter")
    responses = send_together(app, acme, [text_to("15553990001", n) for n in range(SENDERS * 2)])
    assert [r.status_code for r in responses] == [200] * SENDERS * 2
    with app.app_context():
        windows = db.session.scalars(select(Message.conversation_id).where(
            Message.tenant_id == acme.tenant_id)).all()
        opened = db.session.scalar(select(func.count()).where(Message.tenant_id == acme.tenant_id,
                                                              Message.opened_conversation.is_(True)))
        db.session.remove()
    assert len(set(windows)) == 1 and opened == 1
    values = usage_values(app, acme.tenant_id)
    assert values["messages"] == SENDERS * 2
    assert values["conversations"] == 1


def test_a_group_that_fails_is_written_again_one_send_at_a_time(pg_only, app, client):
    # Two sends with one Idempotency-Key among others: a group holding both fails on the key's unique index;
    # each of its sends is then written alone, the key's second send replaying the first.
    acme = sender(client, "starter")
    contacts = [f"1555310{n:04d}" for n in range(SENDERS)]
    headers = [{**acme.headers, "Idempotency-Key": "same"} if n < 2 else acme.headers for n in range(SENDERS)]
    barrier = threading.Barrier(SENDERS)

    def send(n):
        test_client = app.test_client()
        barrier.wait()
        return test_client.post(f"/v23.0/{acme.number}/messages", headers=headers[n],
                                json=text_to(contacts[0] if n < 2 else contacts[n]))

    with ThreadPoolExecutor(SENDERS) as pool:
        responses = list(pool.map(send, range(SENDERS)))
    assert [r.status_code for r in responses] == [200] * SENDERS
    assert responses[0].get_json()["messages"] == responses[1].get_json()["messages"]
    values = usage_values(app, acme.tenant_id)
    assert values["messages"] == values["conversations"] == SENDERS - 1


def test_a_lone_send_writes_its_settled_event_with_its_rows(backend, app, client):
    # On a plan whose quota never refuses, a sandbox send alone is one statement on PostgreSQL, its send.settled
    # (which the inbox wants) written in it; the inbox's thread gets the send all the same on either database.
    acme = sender(client, "enterprise")
    one_statement = statements_like(app, "settled_event AS")
    response = client.post(f"/v23.0/{acme.number}/messages", headers=acme.headers, json=text_to("15553200001"))
    assert response.status_code == 200
    settle(app)
    wamid = response.get_json()["messages"][0]["id"]
    with app.app_context():
        entries = db.session.execute(select(Entry.message_id, Entry.wa_message_id).where(
            Entry.tenant_id == acme.tenant_id)).all()
        message_id = db.session.scalar(select(Message.id).where(Message.wa_message_id == wamid))
        left = db.session.scalar(select(func.count()).select_from(OutboxEvent))
        db.session.remove()
    assert entries == [(message_id, wamid)]
    assert left == 0
    assert len(one_statement) == (1 if backend == "postgresql" else 0)
