"""Live sends: every message type forwarded to the Cloud API with the number's own token, Meta's answers
and refusals passed on as Meta gave them, retries only where nothing can go out twice.

Against the loopback Graph API (tests/graph_fake.py), which records every call it receives.
"""
from __future__ import annotations

import copy
import socket
import threading
import time

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.outbound import send_service
from tests.contacts.consent.factories import opt_in
from tests.factories import sender, usage_values
from tests.messaging.live import CONTACT, add_template, inbound, live_number, tenant_sends, without_our_mark
from tests.metering.test_concurrency import pg_only  # noqa: F401


def billed(app, tenant_id) -> dict:
    return {k: v for k, v in usage_values(app, tenant_id).items() if v}


def only_message(app, tenant_id) -> Message:
    with app.app_context():
        rows = list(db.session.scalars(select(Message).where(Message.tenant_id == tenant_id,
                                                             Message.direction == "out")))
        db.session.expunge_all()
        db.session.remove()
    assert len(rows) == 1, rows
    return rows[0]


def body(kind: str, content, **extra) -> dict:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CONTACT, "type": kind,
            kind: content, **extra}


# Every type, shaped as Meta's Cloud API reference shows it; each must reach Graph unchanged.
EVERY_TYPE = {
    "text": body("text", {"preview_url": True, "body": "Your order: https://shop.example.com/o/1"}),
    "text in reply": body("text", {"body": "Thanks!"}, context={"message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgAS"}),
    "image by id": body("image", {"id": "1479537139650973", "caption": "The receipt"}),
    "image by link": body("image", {"link": "https://cdn.example.com/receipt.jpg"}),
    "document": body("document", {"link": "https://cdn.example.com/invoice.pdf", "filename": "invoice.pdf",
                                   "caption": "November"}),
    "audio": body("audio", {"id": "1013859600285441"}),
    "video": body("video", {"link": "https://cdn.example.com/howto.mp4", "caption": "How to"}),
    "sticker": body("sticker", {"id": "798882015472548"}),
    "location": body("location", {"latitude": 37.44216, "longitude": -122.16130, "name": "Shop",
                                  "address": "1 Hacker Way, Menlo Park"}),
    "contacts": body("contacts", [{
        "name": {"formatted_name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"},
        "phones": [{"phone": "+1 (555) 010-0100", "type": "WORK", "wa_id": "15550100100"}],
        "emails": [{"email": "ada@example.com", "type": "WORK"}],
        "org": {"company": "Analytical Engines"}}]),
    "reply buttons": body("interactive", {
        "type": "button", "body": {"text": "Is this right?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                               {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}),
    "list": body("interactive", {
        "type": "list", "header": {"type": "text", "text": "Menu"}, "body": {"text": "Choose one"},
        "footer": {"text": "Prices include tax"},
        "action": {"button": "Options", "sections": [
            {"title": "Pizza", "rows": [{"id": "margherita", "title": "Margherita", "description": "Tomato"}]}]}}),
    "cta url": body("interactive", {
        "type": "cta_url", "body": {"text": "Track your parcel"},
        "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://shop.example.com/t"}}}),
    "flow": body("interactive", {
        "type": "flow", "body": {"text": "Book a table"},
        "action": {"name": "flow", "parameters": {
            "flow_message_version": "3", "flow_token": "booking-1", "flow_id": "1234567890",
            "flow_cta": "Book", "flow_action": "navigate", "flow_action_payload": {"screen": "WELCOME"}}}}),
    "reaction": body("reaction", {"message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgAS", "emoji": "\U0001F44D"}),
}


@pytest.mark.parametrize("name", list(EVERY_TYPE))
def test_every_message_type_reaches_the_cloud_api_unchanged(app, graph, acme, number, name):
    sent = copy.deepcopy(EVERY_TYPE[name])
    response = acme.send(number=number[0], payload=sent)
    assert response.status_code == 200, response.get_json()
    [call] = graph.requests("POST", "/messages")
    assert call.path == f"/{app.config['WHATSAPP_API_VERSION']}/{number[0]}/messages"
    assert call.headers["Authorization"] == f"Bearer {number[3]}"
    assert without_our_mark(call.body) == EVERY_TYPE[name]
    answer = response.get_json()
    message = only_message(app, acme.tenant_id)
    assert answer["messages"][0]["id"] == message.wa_message_id
    assert message.status == "accepted"
    assert answer["contacts"] == [{"input": CONTACT, "wa_id": CONTACT}]


def test_a_template_with_header_body_and_button_components(app, graph, acme, number):
    graph.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")
    template = {"name": "order_shipped", "language": {"code": "en_US"}, "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/box.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "currency", "currency": {
            "fallback_value": "$10.99", "code": "USD", "amount_1000": 10990}}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "o-1"}]}]}
    response = acme.send(number=number[0], payload=body("template", template, to="1555 999 0001"))
    assert response.status_code == 200, response.get_json()
    assert tenant_sends(graph) == [body("template", template, to="15559990001")]
    assert response.get_json()["messages"][0]["message_status"] == "accepted"
    assert only_message(app, acme.tenant_id).message_status == "accepted"


def test_the_recipient_is_sent_as_the_digits_that_are_metered(app, graph, acme, number):
    assert acme.send(number=number[0], to="+1 (555) 123-4567").status_code == 200
    assert graph.sends()[0]["to"] == CONTACT
    assert only_message(app, acme.tenant_id).wa_id == CONTACT


def test_metas_message_status_and_wa_id_are_kept(app, graph, acme, number):
    graph.message_status = "held_for_quality_assessment"
    graph.add_template(number[2], "promo")
    add_template(app, acme.tenant_id, number[2], "promo", category="MARKETING")
    opt_in(app, acme.tenant_id, number[1], CONTACT)
    graph.wa_ids[CONTACT] = "15551234599"
    response = acme.send(number=number[0], payload=body("template", {"name": "promo", "language": {"code": "en_US"}}))
    assert response.status_code == 200
    assert response.get_json()["messages"][0]["message_status"] == "held_for_quality_assessment"
    assert response.get_json()["contacts"] == [{"input": CONTACT, "wa_id": "15551234599"}]
    assert only_message(app, acme.tenant_id).message_status == "held_for_quality_assessment"


def test_the_v1_api_sends_live_too_without_our_own_fields(app, graph, acme, number):
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        "phone_number_id": number[0], "messaging_product": "whatsapp", "to": CONTACT, "type": "text",
        "text": {"body": "hello"}})
    assert response.status_code == 201, response.get_json()
    assert tenant_sends(graph) == [{"messaging_product": "whatsapp", "to": CONTACT, "type": "text",
                              "text": {"body": "hello"}}]


def test_each_tenant_sends_with_its_own_token(app, client, graph, acme, number):
    other = sender(client, "pro")
    theirs = live_number(app, graph, other.tenant_id)
    inbound(app, other.tenant_id, theirs[1], CONTACT)
    assert other.send(number=theirs[0], to=CONTACT).status_code == 200
    assert acme.send(number=number[0], to=CONTACT).status_code == 200
    tokens = [c.headers["Authorization"] for c in graph.requests("POST", "/messages")]
    assert tokens == [f"Bearer {theirs[3]}", f"Bearer {number[3]}"]
    # Neither may send from the other's number.
    assert other.send(number=number[0], to=CONTACT).status_code == 404
    assert len(graph.sends()) == 2


# -- Meta's refusals, as Meta gave them, and never billed --------------------------------------

REFUSALS = [131047, 131026, 131056, 131048, 80007, 4, 190, 10, 200, 299, 100, 131008, 131009, 131051,
            131052, 131053, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 368, 131000]


@pytest.mark.parametrize("code", REFUSALS)
def test_a_refusal_reaches_the_tenant_as_meta_wrote_it_and_is_not_billed(app, graph, acme, number, code):
    from tests.graph_fake import graph_error as meta

    status, expected = meta(code, subcode=2494010)
    graph.fail("POST", "/messages", code=code, subcode=2494010)
    response = acme.send(number=number[0])
    error = response.get_json()["error"]
    sent = graph.requests("POST", "/messages")[-1]
    meta_said = graph.answers[-1]["error"]
    assert response.status_code == (status if status < 500 else 502)
    assert error["code"] == code
    assert error["error_subcode"] == 2494010
    assert error["error_data"]["details"] == expected["error"]["error_data"]["details"]
    assert error["fbtrace_id"] == meta_said["fbtrace_id"]
    assert error["type"] == "OAuthException"
    assert error["message"] == meta_said["message"]
    assert sent.headers["Authorization"] == f"Bearer {number[3]}"
    message = only_message(app, acme.tenant_id)
    assert (message.status, message.error_code, message.wa_message_id) == ("failed", code, None)
    assert message.error_details == expected["error"]["error_data"]["details"]
    assert billed(app, acme.tenant_id) == {}


def test_a_refusal_under_v1_keeps_metas_fields_in_our_envelope(app, graph, acme, number):
    graph.fail("POST", "/messages", code=131026, subcode=2494010)
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        "phone_number_id": number[0], "messaging_product": "whatsapp", "to": CONTACT, "text": {"body": "hi"}})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "upstream_error"
    assert error["details"]["whatsapp_code"] == 131026
    assert error["details"]["error_subcode"] == 2494010
    assert error["details"]["fbtrace_id"] == graph.answers[-1]["error"]["fbtrace_id"]
    assert "message_id" in error["details"]


def test_a_refused_send_is_replayed_as_refused_for_the_same_idempotency_key(app, graph, acme, number):
    graph.fail("POST", "/messages", code=131026)
    first = acme.send(number=number[0], idempotency_key="order-7")
    again = acme.send(number=number[0], idempotency_key="order-7")
    assert first.status_code == 400 and again.status_code == 502
    assert again.get_json()["error"]["code"] == 131026
    assert len(graph.sends()) == 1


def test_an_accepted_send_is_replayed_without_a_second_upstream_call(app, graph, acme, number):
    first = acme.send(number=number[0], idempotency_key="order-8")
    again = acme.send(number=number[0], idempotency_key="order-8")
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert len(graph.sends()) == 1
    assert billed(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.service": 1}


def test_the_same_key_with_a_body_that_forwards_differently_is_a_conflict_and_sends_nothing(
        app, graph, acme, number):
    card = EVERY_TYPE["contacts"]
    first = acme.send(number=number[0], payload=copy.deepcopy(card), idempotency_key="card-1")
    assert first.status_code == 200
    # Fields the schema does not read still reach WhatsApp: another phone on the card is another request.
    other = copy.deepcopy(card)
    other["contacts"][0]["phones"][0]["phone"] = "+1 (555) 010-0199"
    conflict = acme.send(number=number[0], payload=other, idempotency_key="card-1")
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["reason"] == "idempotency_conflict"
    assert len(graph.sends()) == 1
    # The same body forwarded the same way (the recipient written otherwise) is the same request: replayed.
    same = acme.send(number=number[0], payload={**copy.deepcopy(card), "to": "+1 (555) 123-4567"},
                     idempotency_key="card-1")
    assert (same.status_code, same.get_json()) == (200, first.get_json())
    assert len(graph.sends()) == 1
    assert billed(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.service": 1}


def test_a_sandbox_send_with_the_same_key_and_other_unread_fields_is_a_conflict(app, acme):
    card = {**EVERY_TYPE["contacts"], "to": "15551230001"}
    assert acme.send(payload=copy.deepcopy(card), idempotency_key="card-2").status_code == 200
    other = copy.deepcopy(card)
    other["contacts"][0]["emails"][0]["email"] = "countess@example.com"
    assert acme.send(payload=other, idempotency_key="card-2").status_code == 409
    assert acme.send(payload=copy.deepcopy(card), idempotency_key="card-2").status_code == 200


# -- retries: only where nothing can have gone out -------------------------------------------------

def test_metas_throughput_refusal_is_retried_after_retry_after(app, graph, acme, number):
    graph.throttle("POST", "/messages", retry_after=0.2, code=130429)
    started = time.monotonic()
    response = acme.send(number=number[0])
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2
    assert len(graph.sends()) == 2
    assert only_message(app, acme.tenant_id).status == "accepted"
    assert billed(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.service": 1}


def test_a_long_retry_after_is_passed_to_the_tenant_not_waited_for(app, graph, acme, number):
    graph.throttle("POST", "/messages", retry_after=30, code=130429)
    response = acme.send(number=number[0])
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["error"]["code"] == 130429
    assert len(graph.sends()) == 1
    assert billed(app, acme.tenant_id) == {}


def test_throughput_refusals_are_retried_a_bounded_number_of_times(app, graph, acme, number):
    graph.throttle("POST", "/messages", retry_after=0, code=130429, times=10)
    response = acme.send(number=number[0])
    assert response.status_code == 429
    assert len(graph.sends()) == app.config["WHATSAPP_SEND_RETRIES"] + 1


@pytest.mark.parametrize("code", [131056, 80007, 4])
def test_other_rate_refusals_are_not_retried(app, graph, acme, number, code):
    graph.throttle("POST", "/messages", retry_after=0, code=code)
    assert acme.send(number=number[0]).status_code in (400, 429)
    assert len(graph.sends()) == 1
    assert billed(app, acme.tenant_id) == {}


def test_a_5xx_is_not_retried_since_the_message_may_have_gone(app, graph, acme, number):
    graph.fail("POST", "/messages", status=503)
    response = acme.send(number=number[0])
    assert response.status_code == 502
    assert len(graph.sends()) == 1
    assert only_message(app, acme.tenant_id).status == "failed"
    assert billed(app, acme.tenant_id) == {}


def test_a_dropped_connection_is_not_retried(app, graph, acme, number):
    graph.drop("POST", "/messages")
    response = acme.send(number=number[0])
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == 131000
    assert len(graph.requests("POST", "/messages")) == 1
    assert billed(app, acme.tenant_id) == {}


def test_a_read_timeout_answers_504_and_is_not_billed_nor_retried(app, graph, acme, number):
    app.config["WHATSAPP_TIMEOUT_SECONDS"] = 0.3
    try:
        graph.delay("POST", "/messages", seconds=1.0)
        response = acme.send(number=number[0])
    finally:
        app.config["WHATSAPP_TIMEOUT_SECONDS"] = 20.0
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == 131000
    assert len(graph.requests("POST", "/messages")) == 1
    assert only_message(app, acme.tenant_id).status == "failed"
    assert billed(app, acme.tenant_id) == {}


def test_a_refused_connection_is_retried_then_reported_unbilled(app, graph, acme, number):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app.config["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{closed}"
    transport = send_service(app).transports.live
    slept = []
    saved, transport.sleep = transport.sleep, slept.append
    try:
        response = acme.send(number=number[0])
    finally:
        transport.sleep = saved
    assert response.status_code == 502
    assert "could not be reached" in response.get_json()["error"]["message"]
    assert len(slept) == app.config["WHATSAPP_SEND_RETRIES"]
    assert billed(app, acme.tenant_id) == {}


def test_graph_answering_garbage_is_a_502_not_billed(app, graph, acme, number):
    graph.garbage = True
    response = acme.send(number=number[0])
    assert response.status_code == 502
    assert billed(app, acme.tenant_id) == {}


# -- no database connection is held while Meta answers -------------------------------------------

def test_no_database_connection_is_held_across_the_upstream_call(pg_only, app, graph, acme, number):
    graph.delay("POST", "/messages", seconds=1.0)
    results = []
    thread = threading.Thread(target=lambda: results.append(acme.send(number=number[0])))
    thread.start()
    deadline = time.monotonic() + 5
    while not graph.requests("POST", "/messages") and time.monotonic() < deadline:
        time.sleep(0.01)
    with app.app_context():
        held = db.engine.pool.checkedout()
    thread.join()
    assert results[0].status_code == 200
    assert held == 0
