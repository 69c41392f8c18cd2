"""heyoo (PyPI), unchanged but for its base URL, against us on loopback: every Graph call it makes, from a
live number (forwarded to the loopback Graph API, tests/graph_fake.py) and from the sandbox number.

heyoo aims at graph.facebook.com/v14.0 (v15.0 to mark read) with module-level ``requests`` calls; a tenant
points its ``base_url``, ``v15_base_url`` and ``url`` at us and uses an API key as its token. heyoo writes an
optional field it has no value for as null (``"caption": null``, ``"filename": null``, ``"components": null``),
which Graph reads as absent, and so do we: those nulls never reach WhatsApp. heyoo answers Graph's JSON, error
or not (``None`` for a failed upload, media URL or delete).
"""
from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import select

heyoo = pytest.importorskip("heyoo", reason="heyoo is not installed (requirements-dev.txt)")

from saas.extensions import db  # noqa: E402
from saas.messaging.models import Message, PhoneNumber  # noqa: E402
from tests.graph_fake import GRAPH_ERRORS  # noqa: E402
from tests.messaging.live import inbound, live_number_with, without_our_mark  # noqa: E402

TO = "15551234567"  # heyoo's way: country code, no +
QUOTED = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUI3"
IMAGE_URL = "https://cdn.example.com/receipt.jpg"
TEMPLATE = "order_shipped"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def live(app, graph, acme):
    """acme's live number (phone_number_id, pk, waba_id, token): TO's window open, TEMPLATE approved."""
    return live_number_with(app, graph, acme.tenant_id, contacts=[TO], templates=[TEMPLATE])


class Sent:
    """Every request heyoo made and its answer: (method, url, body bytes, status, answer JSON)."""

    def __init__(self):
        self.requests: list[tuple] = []

    def json(self, index: int = -1) -> dict:
        return json.loads(self.requests[index][2])


@pytest.fixture
def sent(monkeypatch, live_server):
    """Records what heyoo's ``requests`` calls to us send and get, then lets them through (the app's own calls to
    Graph, in this process too, are not heyoo's). No proxy for loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    record = Sent()
    passed_on = requests.adapters.HTTPAdapter.send

    def send(adapter, request, **kwargs):
        response = passed_on(adapter, request, **kwargs)
        if not request.url.startswith(live_server + "/"):
            return response
        body = request.body.encode() if isinstance(request.body, str) else request.body
        body = body if isinstance(body, bytes) else None  # an upload streams its form
        try:
            answer = response.json()
        except ValueError:
            answer = None
        record.requests.append((request.method, request.url, body, response.status_code, answer))
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return record


def messenger_for(served: str, key: str, phone_number_id: str):
    """heyoo's client as its README builds it, aimed at us: the base URLs it would aim at Graph."""
    messenger = heyoo.WhatsApp(token=key, phone_number_id=phone_number_id)
    messenger.base_url = f"{served}/v14.0"
    messenger.v15_base_url = f"{served}/v15.0"
    messenger.url = f"{messenger.base_url}/{phone_number_id}/messages"
    return messenger


@pytest.fixture
def on_live(live_server, graph, acme, live, sent):
    return messenger_for(live_server, acme.key, live[0])


@pytest.fixture
def on_sandbox(live_server, graph, acme, sent):
    return messenger_for(live_server, acme.key, acme.number)


def nulls_dropped(value):
    """JSON with its null object members left out: what Graph reads, and what we forward."""
    if isinstance(value, dict):
        return {k: nulls_dropped(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [nulls_dropped(v) for v in value]
    return value


LIST_BUTTON = {  # the README's example
    "header": "Header Testing", "body": "Body Testing", "footer": "Footer Testing",
    "action": {"button": "Button Testing", "sections": [{"title": "iBank", "rows": [
        {"id": "row 1", "title": "Send Money", "description": ""},
        {"id": "row 2", "title": "Withdraw money", "description": ""}]}]}}
REPLY_BUTTONS = {  # the README's example
    "type": "button", "body": {"text": "This is a test button"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "b1", "title": "This is button 1"}},
                           {"type": "reply", "reply": {"id": "b2", "title": "this is button 2"}}]}}
CONTACTS = [{"addresses": [{"street": "1 Hacker Way", "city": "Menlo Park", "state": "CA", "zip": "94025",
                            "country": "United States", "country_code": "us", "type": "WORK"}],
             "emails": [{"email": "ada@example.com", "type": "WORK"}],
             "name": {"formatted_name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"},
             "phones": [{"phone": "+1 (555) 010-0100", "type": "WORK", "wa_id": "15550100100"}]}]

# Every message heyoo sends to POST /{phone_number_id}/messages, one call each, as its README and docstrings
# show them (defaults left as they are: that is where its nulls come from).
SENDS = {
    "text": lambda m: m.send_message("Your order: https://shop.example.com/o/1", TO),
    "text without preview": lambda m: m.send_message("Hello", TO, preview_url=False),
    "reply": lambda m: m.reply_to_message(QUOTED, TO, "Thanks!"),
    "reaction": lambda m: m.send_reaction("\U0001F600", QUOTED, TO),
    "location with string coordinates": lambda m: m.send_location("-23.564", "-46.654", "My Location",
                                                                  "Rua dois, 123", TO),
    "location": lambda m: m.send_location(1.29, 103.85, "Singapore", "Singapore", TO),
    "image by link, no caption": lambda m: m.send_image(IMAGE_URL, TO),
    "image by link with caption": lambda m: m.send_image(IMAGE_URL, TO, caption="The receipt"),
    "image by id, no caption": lambda m: m.send_image("1479537139650973", TO, link=False),
    "sticker by link": lambda m: m.send_sticker("https://cdn.example.com/thanks.webp", TO),
    "sticker by id": lambda m: m.send_sticker("170511049062862", TO, link=False),
    "audio by link": lambda m: m.send_audio("https://cdn.example.com/song.mp3", TO),
    "audio by id": lambda m: m.send_audio("1013859600285441", TO, link=False),
    "video by link, no caption": lambda m: m.send_video("https://cdn.example.com/howto.mp4", TO),
    "video by id with caption": lambda m: m.send_video("1013859600285442", TO, caption="How to", link=False),
    "document by link, no caption or filename": lambda m: m.send_document("https://cdn.example.com/sample.pdf",
                                                                           TO),
    "document by link with caption and filename": lambda m: m.send_document(
        "https://cdn.example.com/invoice.pdf", TO, caption="November", filename="invoice.pdf"),
    "document by id, no caption": lambda m: m.send_document("1013859600285443", TO, link=False),
    "contacts": lambda m: m.send_contacts(CONTACTS, TO),
    "list button": lambda m: m.send_button(LIST_BUTTON, TO),
    "reply buttons": lambda m: m.send_reply_button(REPLY_BUTTONS, TO),
    "custom json": lambda m: m.send_custom_json(
        {"messaging_product": "whatsapp", "type": "audio", "audio": {"id": "1013859600285441"}}, TO),
}
TEMPLATES = {
    "components null": lambda m, name: m.send_template(name, TO, None),
    "components empty": lambda m, name: m.send_template(name, TO, components=[], lang="en_US"),
    "components with parameters": lambda m, name: m.send_template(name, TO, [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/box.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "$10.99"}]}]),
}


def graph_call_answering(graph, wamid: str):
    """The Graph API call whose answer carried ``wamid``."""
    [call] = [call for call in graph.calls
              if isinstance(call.answer, dict) and (call.answer.get("messages") or [{}])[0].get("id") == wamid]
    return call


@pytest.mark.parametrize("name", list(SENDS))
def test_heyoo_sends_every_type_through_a_live_number(graph, on_live, sent, live, name):
    answer = SENDS[name](on_live)

    [(method, url, _, status, _)] = sent.requests
    assert (method, url, status) == ("POST", f"{on_live.base_url}/{live[0]}/messages", 200), answer
    wamid = answer["messages"][0]["id"]
    assert answer["contacts"] == [{"input": TO, "wa_id": TO}]
    call = graph_call_answering(graph, wamid)
    assert call.headers["Authorization"] == f"Bearer {live[3]}"
    assert without_our_mark(call.body) == nulls_dropped(sent.json())


def test_heyoo_sends_every_type_through_the_sandbox(app, graph, acme, on_sandbox, sent):
    answers = {name: send(on_sandbox) for name, send in SENDS.items()}

    assert [status for *_, status, _ in sent.requests] == [200] * len(SENDS), answers
    assert {name: answer["contacts"] for name, answer in answers.items()} == {
        name: [{"input": TO, "wa_id": TO}] for name in SENDS}
    with app.app_context():
        stored = dict(db.session.execute(select(Message.wa_message_id, Message.type).where(
            Message.tenant_id == acme.tenant_id, Message.direction == "out")).all())
        db.session.remove()
    assert {stored[answer["messages"][0]["id"]] for answer in answers.values()} == {
        json.loads(body)["type"] for _, _, body, _, _ in sent.requests}
    assert graph.calls == []


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_heyoo_sends_templates_with_null_empty_or_given_components(graph, on_live, on_sandbox, sent, name):
    live_answer = TEMPLATES[name](on_live, TEMPLATE)
    sandbox_answer = TEMPLATES[name](on_sandbox, "order_update")

    assert [status for *_, status, _ in sent.requests] == [200, 200], (live_answer, sandbox_answer)
    assert live_answer["messages"][0]["message_status"] == "accepted"
    assert sandbox_answer["messages"][0]["message_status"] == "accepted"
    forwarded = without_our_mark(graph_call_answering(graph, live_answer["messages"][0]["id"]).body)
    assert forwarded == nulls_dropped(sent.json(0))
    assert ("components" in forwarded["template"]) is (name != "components null")


def test_heyoo_uploads_reads_downloads_and_deletes_media_of_a_live_number(graph, on_live, sent, live, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)

    media_id = on_live.upload_media(str(photo))["id"]
    [upload] = graph.requests("POST", "/media")
    assert (upload.body["file"], upload.body["type"], upload.body["messaging_product"]) == (
        PNG, "image/png", "whatsapp")
    url = on_live.query_media_url(media_id)
    assert url.startswith(f"{on_live.base_url}/media/{media_id}")
    saved = on_live.download_media(url, "image/png", str(tmp_path / "downloaded"))
    assert saved == str(tmp_path / "downloaded.png")
    assert (tmp_path / "downloaded.png").read_bytes() == PNG
    assert on_live.delete_media(media_id) == {"success": True}
    assert on_live.query_media_url(media_id) is None

    assert [(method, status) for method, _, _, status, _ in sent.requests] == [
        ("POST", 200), ("GET", 200), ("GET", 200), ("DELETE", 200), ("GET", 404)]
    assert sent.requests[-1][4]["error"]["code"] == 100 and sent.requests[-1][4]["error"]["error_subcode"] == 33
    assert all(call.headers["Authorization"] == f"Bearer {live[3]}" for call in graph.calls)


def test_heyoos_media_calls_from_the_sandbox_get_graph_shaped_refusals(graph, on_sandbox, sent, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)

    assert on_sandbox.upload_media(str(photo)) is None
    assert on_sandbox.query_media_url("4242424242") is None
    assert on_sandbox.delete_media("4242424242") is None

    assert [(status, answer["error"]["code"]) for *_, status, answer in sent.requests] == [
        (400, 4001), (404, 100), (404, 100)]
    assert all({"message", "type", "fbtrace_id"} <= set(answer["error"]) for *_, answer in sent.requests)
    assert graph.calls == []


@pytest.mark.parametrize("kind", ["live", "sandbox"])
def test_heyoo_marks_a_received_message_read(app, graph, acme, live, live_server, sent, kind):
    with app.app_context():
        sandbox_pk = db.session.scalar(select(PhoneNumber.id).where(PhoneNumber.phone_number_id == acme.number))
        db.session.remove()
    phone_number_id, pk = (live[0], live[1]) if kind == "live" else (acme.number, sandbox_pk)
    if kind == "sandbox":
        inbound(app, acme.tenant_id, pk, TO)
    with app.app_context():
        wamid = db.session.scalar(select(Message.wa_message_id).where(
            Message.phone_number_id == pk, Message.direction == "in"))
        db.session.remove()

    answer = messenger_for(live_server, acme.key, phone_number_id).mark_as_read(wamid)

    assert answer == {"success": True}
    assert sent.requests[0][1].endswith(f"/v15.0/{phone_number_id}/messages")
    expected = [{"messaging_product": "whatsapp", "status": "read", "message_id": wamid}]
    assert graph.sends() == (expected if kind == "live" else [])
    with app.app_context():
        assert db.session.scalar(select(Message.status).where(Message.wa_message_id == wamid)) == "read"
        db.session.remove()


def test_a_whatsapp_refusal_reaches_heyoo_as_meta_wrote_it(graph, on_live, sent):
    graph.fail("POST", "/messages", code=131026)

    answer = on_live.send_image(IMAGE_URL, TO)

    [meta] = graph.answers
    assert sent.requests[0][3] == GRAPH_ERRORS[131026][0]
    assert {k: answer["error"][k] for k in ("message", "type", "code", "error_data", "fbtrace_id")} == {
        k: meta["error"][k] for k in ("message", "type", "code", "error_data", "fbtrace_id")}
