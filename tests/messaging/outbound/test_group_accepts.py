"""Live sends that come back from WhatsApp together are accepted together: one UPDATE for the group,
each request answered only once its own accept is committed (PostgreSQL, real parallel connections)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, func, select

from saas.extensions import db
from saas.inbox.models import Entry
from saas.messaging.models import Message
from saas.outbox import OutboxEvent
from tests.factories import sender, usage_values
from tests.messaging.live import inbound, live_number
from tests.messaging.numbers.test_multi_number import add_plan
from tests.metering.test_concurrency import pg_only  # noqa: F401

SENDERS = 16


def statements_like(app, fragment: str) -> list:
    """Parameters of every statement the app's engine runs that contains ``fragment``."""
    seen = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if fragment in statement:
            seen.append(parameters)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", note)
    return seen


@pytest.mark.parametrize("plan", ["grouped", "starter"])
def test_sends_answered_together_are_accepted_in_groups_each_with_its_own_id(pg_only, app, client, graph, plan):
    # "grouped" has no inbox: no consumer wants its tenants' send.settled. The starter plan has the inbox: its
    # sends are grouped too, each group's send.settled events written in the group's transaction.
    add_plan(app, "grouped", features=("text", "template", "media", "webhooks", "interactive"))
    acme = sender(client, plan)
    number = live_number(app, graph, acme.tenant_id)
    contacts = [f"1555200{n:04d}" for n in range(SENDERS * 3)]
    for contact in contacts:
        inbound(app, acme.tenant_id, number[1], contact)
    graph.latency = 0.3
    groups = statements_like(app, "UPDATE messages AS m")
    barrier = threading.Barrier(SENDERS)

    def send(chunk):
        test_client = app.test_client()
        barrier.wait()
        return [test_client.post(f"/v23.0/{number[0]}/messages", headers=acme.headers, json={
            "messaging_product": "whatsapp", "to": contact, "type": "text", "text": {"body": "hi"}})
            for contact in chunk]

    with ThreadPoolExecutor(SENDERS) as pool:
        responses = [r for rs in pool.map(send, [contacts[i::SENDERS] for i in range(SENDERS)]) for r in rs]
    assert [r.status_code for r in responses] == [200] * len(contacts)
    answered = {r.get_json()["contacts"][0]["wa_id"]: r.get_json()["messages"][0]["id"] for r in responses}
    with app.app_context():
        rows = db.session.execute(select(Message.wa_id, Message.wa_message_id, Message.status).where(
            Message.tenant_id == acme.tenant_id, Message.direction == "out")).all()
        db.session.remove()
    assert {wa_id: wamid for wa_id, wamid, _ in rows} == answered
    assert {status for *_, status in rows} == {"accepted"}
    # Every accept went through a group statement, and some groups held several.
    sizes = [len(params["ids"]) if isinstance(params, dict) else len(params[0]) for params in groups]
    assert sum(sizes) == len(contacts)
    assert len(groups) < len(contacts)
    assert usage_values(app, acme.tenant_id)["messages"] == len(contacts)
    with app.app_context():
        entries = db.session.execute(select(Entry.message_id, Entry.status, Entry.wa_message_id).where(
            Entry.tenant_id == acme.tenant_id)).all()
        left = db.session.scalar(select(func.count()).select_from(OutboxEvent))
        db.session.remove()
    if plan == "starter":  # each send once on its customer's thread, settled accepted
        assert sorted(wamid for *_, wamid in entries) == sorted(answered.values())
        assert {status for _, status, _ in entries} == {"accepted"}
    else:
        assert entries == []
    assert left == 0
