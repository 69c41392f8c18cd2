"""Forwarded webhooks checked by the handlers tenants write for Meta's: whatsapp-api-js's own Node.js middleware,
pywa's signature check and update parsing, a handler that verifies Meta's serialisation of the parsed body, and
heyoo's payload helpers.

Meta serialises its webhooks compactly, with every non-ASCII character escaped as \\uXXXX (emoji as surrogate
pairs, lowercase hex) and '/' as '\\/', and signs those bytes. Forwarded bodies are written the same way, so a
text with accents or emoji verifies in every one of these handlers, and a notification holding one message
reaches the tenant byte for byte as Meta sent it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request

import pytest

from saas.extensions import db
from saas.messaging.tenant_webhooks import endpoints
from saas.tenants.models import Tenant
from tests import whatsapp_payloads as wa
from tests.clients.node_clients import Server
from tests.factories import settle
from tests.messaging.tenant_webhooks.test_forwarding import (
    deliveries,
    forwarding,
    run_deliveries,
    tenant_with_endpoint,
)  # noqa: F401
from tests.webhook_receiver import Receiver
from tests.webhooks.test_whatsapp_inbound import deliver, post

SENDER = "16505551234"
USER_ID = "US.13491208655302741918"
TEXT = "\u00bfQu\u00e9 tal? Un caf\u00e9 \u2615 y \U0001F600, men\u00fa en /carta"
NAME = "Jos\u00e9 M\u00fcller"
CAPTION = "La roja \U0001F44D \u00bfs\u00ed?"


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def notification_with_accents(app, acme) -> dict:
    """An inbound text and an inbound image (accents, emoji, slashes), and a status, in one notification."""
    with_text = wa.inbound("text", {"body": TEXT}, sender=SENDER, user_id=USER_ID)
    with_image = wa.inbound("image", {"caption": CAPTION, "mime_type": "image/jpeg",
                                      "sha256": "q1W2e3R4t5Y6/u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x=", "id": "1003383421387256"},
                            sender=SENDER, user_id=USER_ID)
    with app.app_context():
        sent = wa.add_sent_message(acme.number)
        db.session.remove()
    value = wa.messages_value(acme.number, contacts=[wa.contact(SENDER, name=NAME, user_id=USER_ID)],
                              messages=[with_text, with_image], statuses=[wa.status(sent, "delivered")])
    return wa.notification(acme.number.waba_id, ("messages", value))


def endpoint_for(app, receiver_url=None):
    """A Starter tenant with a live number and a webhook endpoint (at ``receiver_url``, or a placeholder for now)."""
    class Placeholder:
        url = receiver_url or "http://127.0.0.1:9/hooks/whatsapp"

    return tenant_with_endpoint(app, Placeholder)


def wa_kind(payload: dict) -> str:
    value = payload["entry"][0]["changes"][0]["value"]
    return "status" if "statuses" in value else value["messages"][0]["type"]


def meta_style_signature_ok(raw: bytes, header: str, secret: str) -> bool:
    """How handlers that parse first verify Meta's webhooks: the parsed body serialised again as Meta does."""
    again = json.dumps(json.loads(raw), separators=(",", ":")).replace("/", "\\/").encode()
    return hmac.compare_digest(header, "sha256=" + hmac.new(secret.encode(), again, hashlib.sha256).hexdigest())


def received_by(server: Server, count: int, timeout: float = 10.0) -> list[dict]:
    """What the node endpoint recorded, once it has ``count`` entries."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{server.url}/received", timeout=5) as answer:
            entries = json.load(answer)
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_whatsapp_api_js_verifies_forwarded_texts_with_accents_and_emoji(forwarding, client):  # noqa: F811
    acme = endpoint_for(forwarding)
    server = Server("webhook.mjs", json.dumps({"secret": acme.secret}))
    try:
        with forwarding.app_context():
            endpoints.save_endpoint(db.session.get(Tenant, acme.id), f"{server.url}/hooks/whatsapp")
            db.session.remove()
        deliver(forwarding, client, notification_with_accents(forwarding, acme))
        assert run_deliveries(forwarding) == 3

        entries = received_by(server, 6)
        assert [e["status"] for e in entries if e["kind"] == "answer"] == [200, 200, 200]
        # Deliveries of different messages go out side by side, in either order.
        messages = {e["message"]["type"]: e for e in entries if e["kind"] == "message"}
        assert sorted(messages) == ["image", "text"]
        assert messages["text"]["message"]["text"]["body"] == TEXT
        assert messages["image"]["message"]["image"]["caption"] == CAPTION
        assert messages["image"]["message"]["image"]["mime_type"] == "image/jpeg"
        assert {(m["from"], m["name"], m["phoneID"]) for m in messages.values()} == {
            (SENDER, NAME, acme.number.phone_number_id)}
        assert [e["status"] for e in entries if e["kind"] == "status"] == ["delivered"]
        assert {d.state for d in deliveries(forwarding)} == {"delivered"}
    finally:
        server.stop()


def test_pywa_and_meta_style_handlers_verify_and_read_the_forwarded_body(forwarding, client, receiver):  # noqa: F811
    from heyoo import WhatsApp as Heyoo
    from pywa import WhatsApp, handlers

    acme = endpoint_for(forwarding, receiver.url)
    deliver(forwarding, client, notification_with_accents(forwarding, acme))
    assert run_deliveries(forwarding) == 3
    assert len(receiver.received) == 3

    texts = []
    pywa = WhatsApp(phone_id=acme.number.phone_number_id, token="unused", app_secret=acme.secret, server=None,
                    verify_token="unused")
    pywa.add_handlers(handlers.MessageHandler(lambda _, msg: texts.append((msg.type.value, msg.text or msg.caption,
                                                                           msg.from_user.name))))
    heyoo = Heyoo(token="unused", phone_number_id=acme.number.phone_number_id)
    for received in receiver.received:
        header = received.headers["X-Hub-Signature-256"]
        assert received.body.isascii()
        assert pywa.webhook_update_validator(received.body, header) is None
        assert pywa.webhook_update_validator(received.body, header[:-2] + "00") == ("Forbidden", 403)
        assert meta_style_signature_ok(received.body, header, acme.secret)
        assert pywa.webhook_update_handler(received.body) == ("ok", 200)
    assert sorted(texts) == [("image", CAPTION, NAME), ("text", TEXT, NAME)]

    # Deliveries of different messages go out side by side: find each by what it holds.
    bodies = {wa_kind(json.loads(r.body)): json.loads(r.body) for r in receiver.received}
    text, image, status = bodies["text"], bodies["image"], bodies["status"]
    assert (heyoo.get_message(text), heyoo.get_name(text), heyoo.get_mobile(text)) == (TEXT, NAME, SENDER)
    assert heyoo.get_message_type(image) == "image" and heyoo.get_image(image)["caption"] == CAPTION
    assert heyoo.get_delivery(status) == "delivered" and heyoo.changed_field(status) == "messages"


def test_a_notification_of_one_message_reaches_the_tenant_byte_for_byte_as_meta_sent_it(
        forwarding, client, receiver):  # noqa: F811
    acme = endpoint_for(forwarding, receiver.url)
    number = acme.number
    # Written out as Meta writes it: compact, non-ASCII as lowercase \uXXXX, '/' as '\/'.
    meta = ('{"object":"whatsapp_business_account","entry":[{"id":"%s","changes":[{"value":{"messaging_product":'
            '"whatsapp","metadata":{"display_phone_number":"15550200000","phone_number_id":"%s"},"contacts":[{'
            '"profile":{"name":"Jos\\u00e9 M\\u00fcller"},"wa_id":"16505551234","user_id":"%s"}],"messages":[{'
            '"from":"16505551234","from_user_id":"%s","id":"%s","timestamp":"%s","type":"image","image":{'
            '"caption":"Un caf\\u00e9 \\ud83d\\ude00 \\u00bfs\\u00ed?","mime_type":"image\\/jpeg",'
            '"sha256":"q1W2e3R4t5Y6\\/u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x=","id":"1003383421387256",'
            '"url":"https:\\/\\/lookaside.fbsbx.com\\/whatsapp_business\\/attachments\\/?mid=1003383421387256'
            '&source=webhook"}}]},"field":"messages"}]}]}'
            % (number.waba_id, number.phone_number_id, USER_ID, USER_ID, wa.wamid(), wa.now_ts())).encode()
    assert meta.isascii()
    assert post(client, meta).status_code == 200
    settle(forwarding)
    assert run_deliveries(forwarding) == 1

    [received] = receiver.received
    assert received.body == meta
    signature = hmac.new(acme.secret.encode(), meta, hashlib.sha256).hexdigest()
    assert received.headers["X-Hub-Signature-256"] == f"sha256={signature}"
