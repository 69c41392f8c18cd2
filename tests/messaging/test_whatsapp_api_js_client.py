"""whatsapp-api-js (npm, pinned in tests/clients/node) run by node against us on loopback: every Graph call it
makes, from a live number (forwarded to the loopback Graph API, tests/graph_fake.py) and from the sandbox.

tests/clients/node/drive.mjs builds each message with the library's own classes and calls the library as its
users do; its only change is the ``ponyfill.fetch`` option, which aims the library's graph.facebook.com calls at
our base URL and refuses anything outside 127.0.0.0/8. The API key is the library's token. Calls we do not serve
(the Calling API, QR codes, blocking users, group and username recipients) get Graph-shaped errors.
"""
from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Message, PhoneNumber
from tests.clients import node_clients
from tests.graph_fake import GRAPH_ERRORS
from tests.messaging.live import inbound, live_number_with, without_our_mark

VERSION = "v24.0"
TO = "15551234567"
OTHER = "15551234568"
QUOTED = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUI3"
TEMPLATE = "order_shipped"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

SENDS = ["text", "text with preview", "text in reply, tracked", "text to a recipient object", "image by link",
         "image by id", "video by link", "video by id", "audio by link", "voice note by id", "document by link",
         "document by id", "sticker by link", "sticker by id", "location", "contacts", "reaction",
         "reaction removed", "reply buttons", "reply buttons with an image header", "section list", "url button",
         "flow to a screen", "flow with data exchange", "location request", "call permission request",
         "contact info request", "catalog", "product", "products", "template", "template with named parameters",
         "template without components", "template for a one-time password", "template carousel",
         "template limited time offer", "template catalog", "template multi-product", "template flow",
         "template tap target", "broadcast"]
UNSERVED = {  # what whatsapp-api-js offers that we do not serve, and the answer's HTTP status
    "group recipient": 400, "business-scoped user id recipient": 400, "initiate call": 404, "pre-accept call": 404,
    "accept call": 404, "reject call": 404, "terminate call": 404, "create QR code": 404, "retrieve QR codes": 404,
    "retrieve a QR code": 404, "update QR code": 404, "delete QR code": 404, "block user": 404,
    "unblock user": 404}


@pytest.fixture(scope="module")
def node():
    """whatsapp-api-js installed (npm ci when missing); skips only where there is no node."""
    return node_clients.node_client()


@pytest.fixture
def live(app, graph, acme):
    """acme's live number (phone_number_id, pk, waba_id, token): TO's and OTHER's windows open, TEMPLATE approved."""
    return live_number_with(app, graph, acme.tenant_id, contacts=[TO, OTHER], templates=[TEMPLATE])


def sandbox_pk(app, acme) -> int:
    with app.app_context():
        pk = db.session.scalar(select(PhoneNumber.id).where(PhoneNumber.phone_number_id == acme.number))
        db.session.remove()
    return pk


def received_wamid(app, number_pk: int) -> str:
    with app.app_context():
        wamid = db.session.scalar(select(Message.wa_message_id).where(
            Message.phone_number_id == number_pk, Message.direction == "in").order_by(Message.id))
        db.session.remove()
    return wamid


def drive(served: str, acme, phone_number_id: str, scenarios, **context) -> dict:
    """Run the scenarios in whatsapp-api-js; {name: {requests, answer, error}}."""
    results = node_clients.run("drive.mjs", {
        "base": served, "token": acme.key, "phoneID": phone_number_id, "version": VERSION, "to": TO,
        "others": [OTHER], "quoted": QUOTED, "inbound": None, "template": TEMPLATE,
        "png": base64.b64encode(PNG).decode(), "scenarios": list(scenarios), **context})
    failed = {name: result["error"] for name, result in results.items() if "error" in result}
    assert not failed, failed
    return results


def as_graph_reads_it(sent: dict) -> dict:
    """whatsapp-api-js's body as Graph reads it, which is what we forward: contacts decoded from their JSON string."""
    if isinstance(sent.get("contacts"), str):
        sent = {**sent, "contacts": json.loads(sent["contacts"])}
    return sent


def graph_error(answer: dict) -> dict:
    error = answer["error"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"]
    assert error["type"] and error["fbtrace_id"]
    return error


def test_every_message_whatsapp_api_js_builds_reaches_whatsapp_from_a_live_number(
        app, graph, acme, live, live_server, node):
    results = drive(live_server, acme, live[0], SENDS)

    forwarded = {call.answer["messages"][0]["id"]: call for call in graph.calls
                 if isinstance(call.answer, dict) and "messages" in call.answer}
    problems = {}
    for name in SENDS:
        answers = results[name]["answer"] if name == "broadcast" else [results[name]["answer"]]
        # A broadcast's sends go out side by side: each answer names the recipient it was for.
        answer_for = {answer.get("contacts", [{}])[0].get("input"): answer for answer in answers}
        assert len(results[name]["requests"]) == len(answers) == len(answer_for), (name, answers)
        for request in results[name]["requests"]:
            sent = json.loads(request["body"])
            answer = answer_for[sent["to"]]
            assert (request["method"], request["status"]) == ("POST", 200), (name, answer)
            assert request["url"] == f"{live_server}/{VERSION}/{live[0]}/messages"
            call = forwarded[answer["messages"][0]["id"]]
            if without_our_mark(call.body) != as_graph_reads_it(sent) or call.headers["Authorization"] != f"Bearer {live[3]}":
                problems[name] = (sent, call.body)
    assert problems == {}
    assert len(forwarded) == len(SENDS) + 1  # the broadcast went to two contacts
    assert isinstance(json.loads(results["contacts"]["requests"][0]["body"])["contacts"], str)
    assert results["template"]["answer"]["messages"][0]["message_status"] == "accepted"


def test_every_message_whatsapp_api_js_builds_is_sent_from_the_sandbox(app, graph, acme, live_server, node):
    results = drive(live_server, acme, acme.number, SENDS, template="order_update")

    answers = {name: results[name]["answer"] for name in SENDS}
    statuses = {name: [r["status"] for r in results[name]["requests"]] for name in SENDS}
    assert statuses == {name: [200, 200] if name == "broadcast" else [200] for name in SENDS}, answers
    wamids = [a["messages"][0]["id"] for name in SENDS
              for a in (answers[name] if name == "broadcast" else [answers[name]])]
    with app.app_context():
        stored = db.session.scalars(select(Message.wa_message_id).where(Message.tenant_id == acme.tenant_id,
                                                                         Message.direction == "out")).all()
        db.session.remove()
    assert sorted(stored) == sorted(wamids)
    assert graph.calls == []


def test_whatsapp_api_js_uploads_reads_downloads_and_deletes_media_of_a_live_number(
        graph, acme, live, live_server, node):
    steps = drive(live_server, acme, live[0], ["media round trip"])["media round trip"]
    answer = steps["answer"]

    media_id = answer["uploaded"]["id"]
    [upload] = graph.requests("POST", "/media")
    assert (upload.body["file"], upload.body["type"], upload.body["messaging_product"]) == (
        PNG, "image/png", "whatsapp")
    assert upload.headers["Authorization"] == f"Bearer {live[3]}"
    assert answer["info"]["url"] == f"{live_server}/{VERSION}/media/{media_id}/content"
    assert (answer["info"]["mime_type"], answer["info"]["file_size"], answer["info"]["id"]) == (
        "image/png", len(PNG), media_id)
    assert answer["infoForNumber"] == answer["info"]
    assert answer["content"] == {"status": 200, "type": "image/png", "base64": base64.b64encode(PNG).decode()}
    assert answer["deleted"] == {"success": True}
    assert (graph_error(answer["afterDelete"])["code"], answer["afterDelete"]["error"]["error_subcode"]) == (100, 33)
    assert [(r["method"], r["status"]) for r in steps["requests"]] == [
        ("POST", 200), ("GET", 200), ("GET", 200), ("GET", 200), ("DELETE", 200), ("GET", 404)]
    assert steps["requests"][0]["url"] == f"{live_server}/{VERSION}/{live[0]}/media?messaging_product=whatsapp"


def test_whatsapp_api_js_media_calls_from_the_sandbox_get_graph_shaped_refusals(graph, acme, live_server, node):
    results = drive(live_server, acme, acme.number, ["media round trip", "unknown media"])

    upload = results["media round trip"]
    assert [r["status"] for r in upload["requests"]] == [400]
    assert graph_error(upload["answer"]["uploaded"])["code"] == 4001
    unknown = results["unknown media"]
    assert [r["status"] for r in unknown["requests"]] == [404, 404]
    assert [graph_error(unknown["answer"][step])["error_subcode"] for step in ("info", "deleted")] == [33, 33]
    assert graph.calls == []


@pytest.mark.parametrize("kind", ["live", "sandbox"])
def test_whatsapp_api_js_marks_a_received_message_read_with_and_without_typing(
        app, graph, acme, live, live_server, node, kind):
    phone_number_id, pk = (live[0], live[1]) if kind == "live" else (acme.number, sandbox_pk(app, acme))
    if kind == "sandbox":
        inbound(app, acme.tenant_id, pk, TO)
    wamid = received_wamid(app, pk)

    results = drive(live_server, acme, phone_number_id, ["mark read", "mark read with typing"], inbound=wamid)

    assert [results[name]["answer"] for name in results] == [{"success": True}, {"success": True}]
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    assert graph.sends() == ([read, {**read, "typing_indicator": {"type": "text"}}] if kind == "live" else [])
    with app.app_context():
        assert db.session.scalar(select(Message.status).where(Message.wa_message_id == wamid)) == "read"
        db.session.remove()


@pytest.mark.parametrize("kind", ["live", "sandbox"])
def test_what_whatsapp_api_js_offers_and_we_do_not_serve_gets_graph_shaped_errors(
        graph, acme, live, live_server, node, kind):
    phone_number_id = live[0] if kind == "live" else acme.number
    results = drive(live_server, acme, phone_number_id, UNSERVED)

    statuses = {name: [r["status"] for r in result["requests"]] for name, result in results.items()}
    assert statuses == {name: [status] for name, status in UNSERVED.items()}
    codes = {name: graph_error(result["answer"])["code"] for name, result in results.items()}
    assert codes == {name: 100 for name in UNSERVED}
    assert "to" in results["business-scoped user id recipient"]["answer"]["error"]["details"]
    assert "recipient_type" in results["group recipient"]["answer"]["error"]["details"]
    assert "/calls is not a call this server serves" in results["initiate call"]["answer"]["error"]["message"]
    assert graph.calls == []


def test_a_whatsapp_refusal_reaches_whatsapp_api_js_as_meta_wrote_it(graph, acme, live, live_server, node):
    graph.fail("POST", "/messages", code=131026)

    result = drive(live_server, acme, live[0], ["image by link"])["image by link"]

    [meta] = graph.answers
    assert result["requests"][0]["status"] == GRAPH_ERRORS[131026][0]
    fields = ("message", "type", "code", "error_data", "fbtrace_id")
    assert {k: result["answer"]["error"][k] for k in fields} == {k: meta["error"][k] for k in fields}
