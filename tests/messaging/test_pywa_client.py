"""An existing Cloud API client, unchanged, pointed at our base URL: pywa (PyPI) sends every message type
it supports through a live number, and each body reaches WhatsApp as pywa wrote it (less its nulls, which
Graph reads as absent).

The app is served over real HTTP on 127.0.0.1; pywa's own httpx client talks to it with the tenant's API
key as its token, and the app forwards to the loopback Graph API (tests/graph_fake.py). A request hook on
pywa's client records every body pywa sent us, to compare with what Graph received.
"""
from __future__ import annotations

import json
import re

import httpx
import pytest
from sqlalchemy import select

pywa = pytest.importorskip("pywa", reason="pywa is not installed (requirements-dev.txt)")
from pywa import WhatsApp, errors, types  # noqa: E402
from pywa.types import templates as tpl  # noqa: E402

from saas.extensions import db  # noqa: E402
from saas.messaging.models import Message  # noqa: E402
from tests.factories import sender  # noqa: E402
from tests.graph_fake import GRAPH_ERRORS  # noqa: E402
from tests.messaging.live import CONTACT, add_template, tenant_sends, without_our_mark  # noqa: E402

TO = "+1 555-123-4567"  # as a pywa user may write it; WhatsApp gets CONTACT's digits
QUOTED = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUI3"
IMAGE_URL = "https://cdn.example.com/receipt.jpg"


@pytest.fixture
def served(live_server, graph):
    """The app on http://127.0.0.1:<free port>, forwarding live sends to the loopback Graph API."""
    return live_server


class Recorded:
    """Every request pywa sent: (method, path, JSON body)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []

    def __call__(self, request: httpx.Request) -> None:
        request.read()
        self.requests.append((request.method, request.url.path, json.loads(request.content or b"null")))


@pytest.fixture
def wa(served, acme, number):
    """pywa's WhatsApp client as its users build it, its base URL ours and its token acme's API key."""
    recorded = Recorded()
    session = httpx.Client(trust_env=False, timeout=10, event_hooks={"request": [recorded]})
    client = WhatsApp(phone_id=number[0], token=acme.key, session=session)
    # pywa aims its session at graph.facebook.com/v{version}; a tenant aims it at us instead.
    session.base_url = served + session.base_url.path
    client.recorded = recorded
    yield client
    session.close()


def sent_by_pywa(wa, number) -> dict:
    """The one request pywa made, which must be a POST to our /v{N}/{phone_number_id}/messages."""
    [(method, path, body)] = wa.recorded.requests
    assert method == "POST"
    assert re.fullmatch(rf"/v[0-9.]+/{number[0]}/messages", path), path
    return body


def nulls_dropped(value):
    """JSON with its null object members left out, as Graph reads them (pywa writes a contact's unset fields
    as null)."""
    if isinstance(value, dict):
        return {k: nulls_dropped(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [nulls_dropped(v) for v in value]
    return value


def as_whatsapp_gets_it(body: dict) -> dict:
    """pywa's body with the recipient normalised to its digits and its nulls left out: the changes we make."""
    body = nulls_dropped(body)
    return {**body, "to": "".join(ch for ch in body["to"] if ch.isdigit())} if "to" in body else body


def inbound_wamid(app, tenant_id) -> str:
    with app.app_context():
        wamid = db.session.scalar(select(Message.wa_message_id).where(Message.tenant_id == tenant_id,
                                                                      Message.direction == "in"))
        db.session.remove()
    return wamid


CONTACT_CARD = types.Contact(
    name=types.Contact.Name(formatted_name="Ada Lovelace", first_name="Ada", last_name="Lovelace"),
    phones=[types.Contact.Phone(phone="+1 (555) 010-0100", type="WORK", wa_id="15550100100")],
    emails=[types.Contact.Email(email="ada@example.com", type="WORK")],
    org=types.Contact.Org(company="Analytical Engines"))

# Every message pywa can send that goes to POST /{phone_number_id}/messages, one call each.
SENDS = {
    "text": lambda wa: wa.send_message(TO, "Your order: https://shop.example.com/o/1", preview_url=True),
    "text in reply, tracked": lambda wa: wa.send_message(TO, "Thanks!", reply_to_message_id=QUOTED,
                                                         tracker="order-1", identity_key_hash="a1b2c3d4"),
    "reply buttons": lambda wa: wa.send_message(
        TO, "Is this right?", header="Your order", footer="Reply below",
        buttons=[types.Button("Yes", callback_data="yes"), types.Button("No", callback_data="no")]),
    "section list": lambda wa: wa.send_message(
        TO, "Choose one", header="Menu", footer="Prices include tax", buttons=types.SectionList(
            button_title="Options", sections=[types.Section(title="Pizza", rows=[
                types.SectionRow(title="Margherita", callback_data="margherita", description="Tomato"),
                types.SectionRow(title="Funghi", callback_data="funghi")])])),
    "url button": lambda wa: wa.send_message(
        TO, "Track your parcel", buttons=types.URLButton(title="Track", url="https://shop.example.com/t")),
    "flow button": lambda wa: wa.send_message(
        TO, "Book a table", buttons=types.FlowButton(
            title="Book", flow_id="1234567890", flow_token="booking-1",
            flow_action_type=types.FlowActionType.NAVIGATE, flow_action_screen="WELCOME")),
    "carousel": lambda wa: wa.send_carousel(TO, body="Pick a colour", cards=[
        types.ImageCarouselCard(image=IMAGE_URL, body="Red", buttons=[types.Button("Red", callback_data="red")]),
        types.ImageCarouselCard(image=IMAGE_URL, body="Blue", buttons=[types.Button("Blue", callback_data="blue")])]),
    "voice call button": lambda wa: wa.send_message(TO, "Call us", buttons=types.VoiceCallButton(title="Call")),
    "call permission request": lambda wa: wa.send_message(TO, "May we call?",
                                                          buttons=types.CallPermissionRequestButton()),
    "contact info request": lambda wa: wa.send_message(TO, "Share your details",
                                                       buttons=types.ContactInfoRequestButton()),
    "location request": lambda wa: wa.request_location(TO, "Where should we deliver?"),
    "image by url": lambda wa: wa.send_image(TO, IMAGE_URL, caption="The receipt"),
    "image by id": lambda wa: wa.send_image(TO, "1479537139650973"),
    "image with buttons": lambda wa: wa.send_image(
        TO, IMAGE_URL, caption="Keep it?", buttons=[types.Button("Keep", callback_data="keep")]),
    "video by url": lambda wa: wa.send_video(TO, "https://cdn.example.com/howto.mp4", caption="How to"),
    "video by id": lambda wa: wa.send_video(TO, "1013859600285442"),
    "document by url": lambda wa: wa.send_document(TO, "https://cdn.example.com/invoice.pdf",
                                                   filename="invoice.pdf", caption="November"),
    "document by id": lambda wa: wa.send_document(TO, "1013859600285443", filename="terms.pdf"),
    "audio by url": lambda wa: wa.send_audio(TO, "https://cdn.example.com/note.mp3"),
    "audio by id": lambda wa: wa.send_audio(TO, "1013859600285441"),
    "voice note": lambda wa: wa.send_voice(TO, "1013859600285444"),
    "sticker by url": lambda wa: wa.send_sticker(TO, "https://cdn.example.com/thanks.webp"),
    "sticker by id": lambda wa: wa.send_sticker(TO, "798882015472548"),
    "location": lambda wa: wa.send_location(TO, 37.44216, -122.16130, name="Shop",
                                            address="1 Hacker Way, Menlo Park"),
    "contact": lambda wa: wa.send_contact(TO, CONTACT_CARD),
    "reaction": lambda wa: wa.send_reaction(TO, "\U0001F44D", QUOTED),
    "reaction removed": lambda wa: wa.remove_reaction(TO, QUOTED),
    "catalog": lambda wa: wa.send_catalog(TO, "Browse our shop", thumbnail_product_sku="sku-1"),
    "product": lambda wa: wa.send_product(TO, catalog_id="cat-1", sku="sku-1", body="Today only"),
    "products": lambda wa: wa.send_products(
        TO, catalog_id="cat-1", title="New in", body="This week's arrivals",
        product_sections=[types.ProductsSection(title="Shoes", skus=["sku-1", "sku-2"])]),
}


@pytest.mark.parametrize("name", list(SENDS))
def test_pywa_sends_every_type_through_us_unchanged(app, graph, acme, number, wa, name):
    result = SENDS[name](wa)

    assert result.id.startswith("wamid.")
    assert result.input == TO
    assert result.chat.id == CONTACT
    sent = sent_by_pywa(wa, number)
    [call] = graph.requests("POST", "/messages")
    assert call.headers["Authorization"] == f"Bearer {number[3]}"
    assert without_our_mark(call.body) == as_whatsapp_gets_it(sent)
    assert graph.answers[-1]["messages"][0]["id"] == result.id


def test_a_template_with_header_body_and_button_parameters(app, graph, acme, number, wa):
    graph.add_template(number[2], "order_shipped")
    add_template(app, acme.tenant_id, number[2], "order_shipped")

    result = wa.send_template(TO, name="order_shipped", language=tpl.TemplateLanguage.ENGLISH_US, params=[
        tpl.HeaderImage.params(image="https://cdn.example.com/box.jpg"),
        tpl.BodyText.params("Ada", "$10.99"),
        tpl.URLButton.params(url_variable="o-1", index=0),
        tpl.QuickReplyButton.params(callback_data="stop", index=1),
        tpl.CopyCodeButton.params(coupon_code="25OFF", index=2)])

    assert result.id.startswith("wamid.")
    sent = sent_by_pywa(wa, number)
    kinds = [c["type"].lower() for c in sent["template"]["components"]]
    assert kinds == ["header", "body", "button", "button", "button"]
    assert tenant_sends(graph) == [as_whatsapp_gets_it(sent)]


def test_marking_read_and_typing_answer_success(app, graph, acme, number, wa):
    wamid = inbound_wamid(app, acme.tenant_id)

    assert wa.mark_message_as_read(wamid).success is True
    assert wa.indicate_typing(wamid).success is True

    read, typing = [body for _, _, body in wa.recorded.requests]
    assert read == {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    assert typing == {**read, "typing_indicator": {"type": "text"}}
    # Where WhatsApp is told too, it is told exactly what pywa said.
    assert graph.sends() in ([], [read, typing])
    with app.app_context():
        assert db.session.scalar(select(Message.status).where(Message.wa_message_id == wamid)) == "read"
        db.session.remove()


@pytest.mark.parametrize("code, refusal", [
    (131026, errors.MessageUndeliverable),
    (131047, errors.ReEngagementMessage),
    (131056, errors.TooManyMessages),
    (132001, errors.TemplateNotExists),
    (190, errors.ExpiredAccessToken),
])
def test_a_whatsapp_refusal_reaches_pywa_as_its_own_error(app, graph, acme, number, wa, code, refusal):
    graph.fail("POST", "/messages", code=code)

    with pytest.raises(refusal) as raised:
        wa.send_message(TO, "hello")

    [answer] = graph.answers
    meta = answer["error"]
    assert raised.value.code == code
    assert raised.value.status_code == GRAPH_ERRORS[code][0]
    assert raised.value.message == meta["message"]
    assert raised.value.details == meta["error_data"]["details"]
    assert raised.value.fbtrace_id == meta["fbtrace_id"]
    assert raised.value.type == meta["type"]


def test_our_own_refusals_reach_pywa_in_metas_shape(app, graph, acme, number, wa):
    """A send we refuse before WhatsApp (outside the customer-service window) is a pywa error with Meta's code."""
    with pytest.raises(errors.ReEngagementMessage) as raised:
        wa.send_message("+1 555-999-0001", "hello")
    assert raised.value.code == 131047
    assert graph.sends() == []


def test_another_tenants_number_is_not_reachable_through_pywa(app, graph, client, number, served):
    other = sender(client, "pro")
    with httpx.Client(trust_env=False, timeout=10) as session:
        intruder = WhatsApp(phone_id=number[0], token=other.key, session=session)
        session.base_url = served + session.base_url.path
        with pytest.raises(errors.WhatsAppError) as raised:
            intruder.send_message(TO, "hello")
    assert (raised.value.code, raised.value.subcode, raised.value.status_code) == (100, 33, 404)
    assert graph.sends() == []
