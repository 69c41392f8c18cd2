"""Live sends that come back from WhatsApp together are accepted together: one UPDATE for the group,
each request answered only once its own accept is committed (PostgreSQL, real parallel connections)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event, select

from saas.extensions import db
from saas.messaging.models import Message
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


def test_sends_answered_together_are_accepted_in_groups_each_with_its_own_id(pg_only, app, client, graph):
    # A plan without the inbox: no consumer wants its tenants' send.settled, so their accepts are grouped
    # (a tenant whose send.settled is read is accepted alone, with its event in the same transaction).
    add_plan(app, "grouped", features=("text", "template", "media", "webhooks", "interactive"))
    acme = sender(client, "grouped")
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
