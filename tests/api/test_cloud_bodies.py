"""Message bodies read as Graph reads them: a null member is a member left out, in every optional field of every
message type (heyoo writes ``"caption": null``, pywa a contact's unset names as null), and the message's object
may come JSON-encoded in a string (whatsapp-api-js sends ``"contacts": "[...]"``). What a live number forwards
is that reading: no nulls, the object decoded.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Message, PhoneNumber
from tests.factories import sender
from tests.messaging.live import inbound, live_number_with, tenant_sends

TO = "15551234567"
ACTION = {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}
CARD = {"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada", "middle_name": None},
        "phones": [{"phone": "+1 555 010 0100", "type": None, "wa_id": "15550100100"}], "emails": None}


def message(kind: str, obj, **envelope) -> dict:
    return {"messaging_product": "whatsapp", "to": TO, "type": kind, kind: obj, **envelope}


# Every optional field of the message schemas, null (the envelope's too), per type.
WITH_NULLS = {
    "text": message("text", {"body": "hi", "preview_url": None}, recipient_type=None, context=None,
                    biz_opaque_callback_data=None, image=None),
    "template": message("template", {"name": "hello_world", "language": {"code": "en_US", "policy": None},
                                     "components": None}),
    "image by link": message("image", {"link": "https://cdn.example.com/a.jpg", "id": None, "caption": None}),
    "document by id": message("document", {"id": "1013859600285443", "link": None, "caption": None,
                                           "filename": None}),
    "audio": message("audio", {"id": "1013859600285441", "link": None}),
    "location": message("location", {"latitude": 37.4, "longitude": -122.1, "name": None, "address": None}),
    "contacts": message("contacts", [CARD]),
    "interactive": message("interactive", {"type": "button", "body": {"text": "Sure?"}, "header": None,
                                           "footer": None, "action": ACTION}),
    "reaction": message("reaction", {"message_id": "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUI3", "emoji": "\U0001F44D"},
                        context=None),
}


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@pytest.fixture
def acme(client):
    return sender(client, "pro")


@pytest.fixture
def live(app, graph, acme):
    """acme's live number (phone_number_id, pk, waba_id, token): TO's window open, hello_world approved."""
    return live_number_with(app, graph, acme.tenant_id, contacts=[TO], templates=["hello_world"])


@pytest.mark.parametrize("name", list(WITH_NULLS))
def test_a_null_optional_field_is_a_field_left_out(acme, name):
    response = acme.send(payload=WITH_NULLS[name])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["messages"][0]["id"].startswith("wamid.")


@pytest.mark.parametrize("name", list(WITH_NULLS))
def test_a_live_number_forwards_the_body_without_its_nulls(graph, acme, live, name):
    response = acme.send(payload=WITH_NULLS[name], number=live[0])
    assert response.status_code == 200, response.get_json()
    [forwarded] = tenant_sends(graph)
    assert forwarded == without_nulls(WITH_NULLS[name])
    assert "null" not in json.dumps(forwarded)


def test_nulls_are_absent_in_a_mark_read_and_in_the_v1_body(app, acme):
    with app.app_context():
        pk = db.session.scalar(select(PhoneNumber.id).where(PhoneNumber.phone_number_id == acme.number))
        db.session.remove()
    inbound(app, acme.tenant_id, pk, TO)
    with app.app_context():
        wamid = db.session.scalar(select(Message.wa_message_id).where(Message.direction == "in"))
        db.session.remove()
    read = acme.client.post(f"/v23.0/{acme.number}/messages", headers=acme.headers, json={
        "messaging_product": "whatsapp", "status": "read", "message_id": wamid, "typing_indicator": None})
    assert read.status_code == 200, read.get_json()
    v1 = acme.client.post("/api/v1/messages", headers=acme.headers,
                          json={**WITH_NULLS["text"], "phone_number_id": None})
    assert v1.status_code == 201, v1.get_json()


def test_a_required_field_given_as_null_is_missing(acme):
    response = acme.send(payload=message("text", {"body": None}))
    assert response.status_code == 400
    assert response.get_json()["error"]["details"] == {"text": {"body": ["Missing data for required field."]}}
    assert acme.send(payload={**message("text", {"body": "hi"}), "to": None}).status_code == 400


def test_contacts_encoded_as_a_json_string_are_read_as_the_array(graph, acme, live):
    encoded = message("contacts", json.dumps([CARD]))
    assert acme.send(payload=encoded).status_code == 200
    response = acme.send(payload=encoded, number=live[0])
    assert response.status_code == 200, response.get_json()
    assert tenant_sends(graph) == [message("contacts", without_nulls([CARD]))]


def test_any_message_object_may_come_json_encoded(acme):
    response = acme.send(payload=message("location", json.dumps({"latitude": 1.5, "longitude": 2.5})))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("encoded, problem", [
    ("not json", "Not a valid list."),
    ('"[]"', "Not a valid list."),
    ("[]", "Length must be between 1 and 20."),
    (json.dumps([{"name": {"formatted_name": "Ada\x00"}}]), "Strings in the request body must not contain NUL"),
    ("[" * 40 + "]" * 40, "nested more than"),
])
def test_a_json_encoded_object_is_checked_like_any_body(graph, acme, encoded, problem):
    response = acme.send(payload=message("contacts", encoded))
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == 100
    assert problem in json.dumps(error["details"]["contacts"])
