"""Sending a batch (SendService.send_many) from anywhere: a plain function with no request and no app
context, a thousand recipients, each answered as its send alone would be, and usage exact."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import has_app_context, has_request_context
from sqlalchemy import case, func, select

from saas.billing.catalog import plan_by_code
from saas.error_handlers import graph_envelope
from saas.errors import NotFound, OutsideCustomerServiceWindow, QuotaExceeded, UpstreamError
from saas.extensions import db
from saas.messaging.models import Conversation, Message
from saas.messaging.outbound import send_service
from saas.messaging.outbound.rules import SANDBOX_SILENT_RECIPIENT
from saas.metering.models import UsageRecord
from saas.tenants.services import tenant_snapshot
from tests.factories import sender, set_quota, usage_values
from tests.messaging.live import add_template, live_number_with, template_payload, text_payload
from tests.metering.test_concurrency import counter_values, pg_only  # noqa: F401
from tests.metering.test_failures import assert_usage_equals_rows
from tests.metering.test_message_plans import MARKETING, UTILITY, message_plan
from tests.metering.test_reporting import records


def snapshot_of(app, tenant_id):
    with app.app_context():
        tenant = tenant_snapshot(tenant_id)
        db.session.remove()
    return tenant


def send_from_a_worker(app, tenant, number: str, items: list):
    """What a worker or a scheduled job does: no request, no app context, only the app's send service."""
    assert not has_app_context() and not has_request_context()
    return send_service(app).send_many(tenant, number, items)


def rows(app, tenant_id) -> dict:
    """The tenant's messages (went out, or failed), its windows and its usage records."""
    went_out = case((Message.status == "failed", "failed"), else_="went out")
    with app.app_context():
        by_status = dict(db.session.execute(select(went_out, func.count()).where(
            Message.tenant_id == tenant_id, Message.direction == "out").group_by(went_out)).all())
        windows = db.session.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.tenant_id == tenant_id))
        records = db.session.scalar(select(func.count()).select_from(UsageRecord).where(
            UsageRecord.tenant_id == tenant_id, UsageRecord.voided_at.is_(None)))
        db.session.remove()
    return {"messages": by_status, "windows": windows, "records": records}


def test_a_worker_sends_to_a_thousand_recipients_one_refused_and_usage_is_exact(app, client):
    acme = sender(client, "pro")
    items = [text_payload(f"+44 7700 9{n:05d}", f"Your order {n} shipped") for n in range(1000)]
    # The sandbox's silent recipient never writes: WhatsApp's customer-service window refuses it (131047).
    items[417] = text_payload(SANDBOX_SILENT_RECIPIENT, "hello?")

    results = send_from_a_worker(app, snapshot_of(app, acme.tenant_id), acme.number, items)

    assert [r.index for r in results] == list(range(1000))
    refused = [r for r in results if not r.accepted]
    assert [(r.index, type(r.error), r.message_id) for r in refused] == [(417, OutsideCustomerServiceWindow, None)]
    accepted = [r for r in results if r.accepted]
    assert len({r.message_id for r in accepted}) == len({r.wa_message_id for r in accepted}) == 999
    assert accepted[0].response_body["contacts"] == [{"input": "+44 7700 900000", "wa_id": "447700900000"}]
    # Metered once per message that went out, the refused one not at all: the usage, the counters alone
    # once rolled up, and what the rows say was billed agree.
    exact = {"messages": 999, "conversations": 999, "conversations.service": 999}
    assert usage_values(app, acme.tenant_id) == exact
    assert counter_values(app, acme.tenant_id) == exact
    assert_usage_equals_rows(app)
    assert rows(app, acme.tenant_id) == {"messages": {"went out": 999}, "windows": 999, "records": 999}


def test_each_refusal_is_the_one_the_same_send_alone_gets(app, client):
    acme = sender(client, "starter")  # no interactive messages on Starter
    bad = {
        "invalid recipient": text_payload("12"),
        "no text object": {"messaging_product": "whatsapp", "to": "15551230001", "type": "text"},
        "unknown template": template_payload("15551230002", "no_such_template"),
        "outside the window": text_payload(SANDBOX_SILENT_RECIPIENT),
        "not in the plan": {"messaging_product": "whatsapp", "to": "15551230003", "type": "interactive",
                            "interactive": {"type": "button", "body": {"text": "Yes?"}, "action": {"buttons": []}}},
        "refused by WhatsApp": text_payload("15550000131"),  # the sandbox's undeliverable recipient
        "not an object": ["messaging_product", "whatsapp"],
    }
    results = send_from_a_worker(app, snapshot_of(app, acme.tenant_id), acme.number, list(bad.values()))

    assert not any(r.accepted for r in results)
    for (case, body), result in zip(bad.items(), results):
        alone = acme.send(payload=body)
        with app.test_request_context(f"/v23.0/{acme.number}/messages"):
            envelope = graph_envelope(result.error)
        expected = alone.get_json()["error"]
        if case == "refused by WhatsApp":  # each names its own failed message
            assert envelope["details"]["message_id"] == result.message_id != expected["details"]["message_id"]
            envelope["details"].pop("message_id"), expected["details"].pop("message_id")
        envelope.pop("fbtrace_id"), expected.pop("fbtrace_id")
        assert (result.error.status, envelope) == (alone.status_code, expected), case
    # Nothing was billed: the refused sends of both ways wrote only WhatsApp's two failed messages.
    assert usage_values(app, acme.tenant_id) == {}
    assert rows(app, acme.tenant_id)["messages"] == {"failed": 2}


def test_a_batch_stops_exactly_at_the_hard_cap(app, client):
    acme = sender(client)
    with app.app_context():
        set_quota("free", 5)
        db.session.remove()
    assert acme.send(to="15551110000").status_code == 200  # one of the five used
    contacts = ["15551110001", "15551110000", "15551110002", "15551110001", "15551110003", "15551110004",
                "15551110005", "15551110000"]
    results = send_from_a_worker(app, snapshot_of(app, acme.tenant_id), acme.number,
                                 [text_payload(contact) for contact in contacts])

    # Opens 1, 2, 3 and 4 fill the quota; joining an open window opens nothing, so the contacts already
    # reached still pass; the first new contact past the cap (index 6) is refused.
    assert [r.accepted for r in results] == [True, True, True, True, True, True, False, True]
    error = results[6].error
    assert isinstance(error, QuotaExceeded) and error.details == {"quota": 5, "used": 5, "metric": "conversations"}
    assert counter_values(app, acme.tenant_id) == {"messages": 8, "conversations": 5, "conversations.service": 5}
    assert_usage_equals_rows(app)
    # Nothing of the refused one is left: no window, no message.
    assert rows(app, acme.tenant_id) == {"messages": {"went out": 8}, "windows": 5, "records": 5}
    assert acme.send(to="15551110009").status_code == 402


def test_a_batch_on_a_per_message_plan_bills_each_priced_message_up_to_the_hard_cap(app, client):
    message_plan(app, included=3)  # marketing and utility priced, a hard cap
    bulk = sender(client, "bulk")
    items = [text_payload("15551230001"),                # service: free, counts against nothing
             template_payload("15551230001", MARKETING),  # 1
             template_payload("15551230001", MARKETING),  # 2: the same window, another priced message
             template_payload("15551230002", UTILITY),    # 3: the quota is full
             template_payload("15551230003", MARKETING),  # refused, its window with it
             text_payload("15551230003"),                 # service still goes at the cap
             template_payload("15551230002", UTILITY)]    # refused, though its window is open
    results = send_from_a_worker(app, snapshot_of(app, bulk.tenant_id), bulk.number, items)

    assert [r.accepted for r in results] == [True, True, True, True, False, True, False]
    alone = bulk.send(payload=template_payload("15551230004", MARKETING))
    for result in (results[4], results[6]):
        with app.test_request_context(f"/v23.0/{bulk.number}/messages"):
            envelope = graph_envelope(result.error)
        expected = alone.get_json()["error"]
        envelope.pop("fbtrace_id"), expected.pop("fbtrace_id")
        assert (result.error.status, envelope) == (alone.status_code, expected)
    assert results[4].error.details == {"quota": 3, "used": 3, "metric": "messages"}
    # One usage record per priced message that went out, named by its message; windows are not billed.
    billed = [f"message:{results[n].message_id}" for n in (1, 2, 3)]
    with app.app_context():
        assert [(r.metric, r.subject) for r in records(bulk.tenant_id)] == [
            ("messages.marketing", billed[0]), ("messages.marketing", billed[1]), ("messages.utility", billed[2])]
        db.session.remove()
    assert counter_values(app, bulk.tenant_id) == {"messages": 5, "messages.marketing": 2, "messages.utility": 1}
    assert_usage_equals_rows(app)
    assert rows(app, bulk.tenant_id) == {"messages": {"went out": 5}, "windows": 4, "records": 3}


def test_batches_racing_single_sends_never_pass_the_cap_and_meter_each_send_once(pg_only, app, client):
    acme = sender(client)
    with app.app_context():
        set_quota("free", 20)
        plan_by_code("free").rate_limit_per_minute = 1000  # the cap is under test here, not the rate limit
        db.session.commit()
        db.session.remove()
    tenant = snapshot_of(app, acme.tenant_id)
    batches = [[text_payload(f"155544{b}0{n:03d}") for n in range(15)] for b in range(2)]
    singles = [f"1555449{n:04d}" for n in range(20)]
    barrier = threading.Barrier(6)

    def batch(items):
        barrier.wait()
        return send_from_a_worker(app, tenant, acme.number, items)

    def one_by_one(contacts):
        own_client = app.test_client()
        barrier.wait()
        return [own_client.post(f"/v23.0/{acme.number}/messages", headers=acme.headers,
                                json=text_payload(contact)).status_code for contact in contacts]

    with ThreadPoolExecutor(6) as pool:
        running = [pool.submit(batch, items) for items in batches]
        sending = [pool.submit(one_by_one, singles[i::4]) for i in range(4)]
        batch_results = [future.result() for future in running]
        statuses = [status for future in sending for status in future.result()]

    assert set(statuses) <= {200, 402}
    assert sum(r.accepted for results in batch_results for r in results) + statuses.count(200) == 20
    for results in batch_results:
        # Within a batch the quota is taken in order: whatever passed came before whatever did not.
        accepted = [r.accepted for r in results]
        assert accepted == sorted(accepted, reverse=True)
        assert all(isinstance(r.error, QuotaExceeded) for r in results if not r.accepted)
    assert counter_values(app, acme.tenant_id) == {"messages": 20, "conversations": 20, "conversations.service": 20}
    assert_usage_equals_rows(app)
    assert rows(app, acme.tenant_id) == {"messages": {"went out": 20}, "windows": 20, "records": 20}


def test_a_live_batch_sends_through_the_cloud_api_and_unbills_what_graph_refuses(app, client, live):
    acme = sender(client, "pro")
    contacts = [f"1555333{n:04d}" for n in range(40)]
    phone_number_id, number_pk, waba_id, _ = live_number_with(app, live, acme.tenant_id, contacts=contacts,
                                                              templates=("order_update",))
    # Approved here, but WhatsApp has no such template: Graph refuses that one send (132001).
    add_template(app, acme.tenant_id, waba_id, "retired_notice")
    items = [text_payload(contact, f"hi {n}") for n, contact in enumerate(contacts)]
    items.insert(7, template_payload("15553339999", "retired_notice"))
    items.insert(20, template_payload("15553339998", "order_update"))
    items.insert(30, text_payload("15553339997"))  # never wrote to the number: outside its window

    results = send_from_a_worker(app, snapshot_of(app, acme.tenant_id), phone_number_id, items)

    refused = {r.index: r for r in results if not r.accepted}
    assert sorted(refused) == [7, 30]
    assert isinstance(refused[7].error, UpstreamError) and refused[7].error.graph_code == 132001
    assert isinstance(refused[30].error, OutsideCustomerServiceWindow)
    assert len(live.sends()) == 42  # each message once, the one refused here never
    sent = {body["to"]: body for body in live.sends()}
    for result in results:
        if result.accepted:
            assert result.wa_message_id in {a["messages"][0]["id"] for a in live.answers if "messages" in a}
            assert sent[result.response_body["contacts"][0]["wa_id"]]["biz_opaque_callback_data"] == \
                f"relay:{result.message_id}"
    assert results[20].response_body["messages"][0]["message_status"] == "accepted"
    with app.app_context():
        failed = db.session.execute(select(Message.status, Message.error_code, Message.conversation_id).where(
            Message.id == refused[7].message_id)).one()
        db.session.remove()
    assert tuple(failed) == ("failed", 132001, None)
    # The refused template's utility conversation was taken back with it.
    assert usage_values(app, acme.tenant_id) == {"messages": 41, "conversations": 41, "conversations.service": 40,
                                                 "conversations.utility": 1}
    assert_usage_equals_rows(app)
    assert rows(app, acme.tenant_id)["messages"] == {"went out": 41, "failed": 1}


def test_a_tenant_that_may_not_send_gets_one_refusal_and_nothing_is_sent(app, client):
    acme = sender(client, "pro")
    with pytest.raises(NotFound):
        send_from_a_worker(app, snapshot_of(app, acme.tenant_id), "999999999999999", [text_payload("15551230001")])
    assert rows(app, acme.tenant_id)["messages"] == {}


def test_the_command_sends_a_file_of_json_lines(app, client, runner, tmp_path):
    acme = sender(client, "pro")
    lines = [text_payload("15551240001"), "not json", text_payload("12"), text_payload("15551240002")]
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n\n")

    result = runner.invoke(args=["sends", "batch", "--tenant", acme.tenant_slug, "--from", acme.number,
                                 "--batch-size", "2", str(path)])

    assert result.exit_code == 1, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["line"] for p in printed] == [1, 2, 3, 4]
    assert [("message_id" in p, p.get("error", {}).get("code")) for p in printed] == [
        (True, None), (False, "invalid_request"), (False, "invalid_request"), (True, None)]
    assert printed[1]["error"]["message"] == "The request body is not valid JSON."
    assert printed[2]["error"]["details"] == {"to": ["Must be a phone number in international format, 7 to 15 digits."]}
    assert "Sent 2, refused 2." in result.stderr
    assert usage_values(app, acme.tenant_id)["messages"] == 2


def test_the_graph_pool_keeps_every_call_a_batch_has_in_flight(app, graph, caplog):
    """A worker whose batches have more calls in flight than WHATSAPP_POOL_SIZE keeps a connection for each:
    none opened only to be dropped (urllib3 warns, on every call, when it drops one)."""
    from saas import create_app

    worker = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                         "SERVER_NAME": None, "HOUSEKEEPING": False, "WHATSAPP_POOL_SIZE": 2,
                         "SEND_MANY_CONCURRENCY": 8})
    session = worker.extensions["graph"].session
    graph.latency = 0.2  # the eight calls overlap
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"), ThreadPoolExecutor(8) as calls:
        answers = list(calls.map(lambda n: session.get(f"{graph.url}/v23.0/{n}", timeout=5), range(8)))
    assert len(answers) == 8 and all(a.status_code for a in answers)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
