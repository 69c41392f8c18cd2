"""The compiled send-body loader and the marshmallow schema it is drawn from decide every body alike.

The same corpus goes to both: a valid body of every message type in the shapes
the clients send (nulls for absent fields as heyoo and pywa write them, the
type's object JSON-encoded as whatsapp-api-js writes it, the v1 body with its
phone_number_id), and every one of them changed at each place: a member left
out, replaced by a value of each JSON type and of each edge length, an unknown
member added, the type switched. For each body: the compiled loader either
leaves it to marshmallow or gives exactly marshmallow's result (the same keys
in the same order, the same JSON types), and ``outbound`` accepts and refuses
exactly as the schema alone does, with the same message and per-field details.
"""
from __future__ import annotations

import json

import pytest

from saas.api.schemas import V1Send
from saas.errors import InvalidRequest
from saas.messaging.outbound import payloads
from saas.messaging.outbound.compiled_bodies import KNOWN_HOOKS, hook_names
from tests.api.test_cloud_bodies import WITH_NULLS, message

ODD = (None, True, False, 0, 1, -1, 1.5, 91, -181, 2**60, "", "x", "whatsapp", "text", "individual",
       "deterministic", "a" * 16, "a" * 33, "a" * 257, "a" * 1025, "a" * 4097, "+1 (555) 010-0100", "1" * 16,
       "\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "[1]", '{"body": "hi"}', "https://cdn.example.com/a.jpg",
       [], [{}], [1], {}, {"x": 1}, {"body": "hi"}, {"text": "hi"}, {"formatted_name": "Ada"})
BASES = {
    **WITH_NULLS,
    "plain text": message("text", {"body": "hello"}),
    "text to a formatted number": message("text", {"body": "hi", "preview_url": True}, to="+1 (555) 123-4567"),
    "text by default": {"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "hi"}},
    "text in reply": message("text", {"body": "hi"}, context={"message_id": "wamid.X"},
                             biz_opaque_callback_data="order-1", recipient_type="individual"),
    "template with components": message("template", {
        "name": "order_update", "language": {"code": "en_US", "policy": "deterministic"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}),
    "location of integers": message("location", {"latitude": 37, "longitude": -122}),
    "encoded contacts": message("contacts", json.dumps([{"name": {"formatted_name": "Ada"}}])),
    "encoded template": message("template", json.dumps({"name": "hello_world", "language": {"code": "en_US"}})),
    "unknown members": message("text", {"body": "hi", "extra": 1}, extra={"a": 1}),
}


def paths(value, prefix=()):
    """Every place in a body: (path, value there)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,), item
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,), item
            yield from paths(item, prefix + (index,))


def changed(body, path, new=None, delete=False):
    body = json.loads(json.dumps(body))
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return body


def corpus():
    for name, base in BASES.items():
        for body in (base, {**base, "phone_number_id": "106540352242922"}):
            yield name, body
            yield name + " +unknown", {**body, "surprise": {"a": None}}
            for kind in payloads.MESSAGE_TYPES:
                yield f"{name} as {kind}", {**body, "type": kind}
            for path, _ in list(paths(body)):
                if not isinstance(path[-1], int):
                    yield f"{name} without {path}", changed(body, path, delete=True)
                for odd in ODD:
                    yield f"{name} {path}={odd!r:.20}", changed(body, path, odd)


CORPUS = list(corpus())


def marshmallow_outcome(schema, body):
    try:
        return ("accepted", json.dumps(payloads.load(schema, body)))
    except InvalidRequest as error:
        return ("refused", error.message, json.dumps(error.details, sort_keys=True))


def send_path_outcome(schema, body):
    try:
        result = payloads.outbound(body, schema)
    except InvalidRequest as error:
        return ("refused", error.message, json.dumps(error.details, sort_keys=True))
    return ("accepted", json.dumps({**result.payload, "to_input": result.to_input}))


@pytest.mark.parametrize("schema", [payloads.MessageBody(), V1Send()], ids=["cloud", "v1"])
def test_compiled_loader_and_schema_decide_every_body_alike(schema):
    compiled = payloads.compiled_loader(type(schema))
    assert compiled is not None
    assert len(CORPUS) > 5000
    decided = accepted = 0
    for name, body in CORPUS:
        expected = marshmallow_outcome(schema, body)
        fast = compiled(json.loads(json.dumps(body)))
        if fast is not None:
            decided += 1
            assert ("accepted", json.dumps(fast)) == expected, name
        accepted += expected[0] == "accepted"
        assert send_path_outcome(schema, body) == expected, name
    # The fast path does take most of what is accepted (media bodies, with their id-or-link rule, are
    # marshmallow's), and refuses nothing itself.
    assert decided > accepted * 0.6


@pytest.mark.parametrize("name", ["text", "template", "location", "contacts", "interactive", "reaction",
                                  "plain text", "text in reply", "template with components", "encoded contacts"])
def test_the_common_bodies_take_the_compiled_path(name):
    assert payloads.compiled_loader(payloads.MessageBody)(BASES[name]) is not None
    assert payloads.compiled_loader(V1Send)({**BASES[name], "phone_number_id": "1"}) is not None


def test_the_compiled_loader_knows_every_hook_of_the_send_body():
    # A hook added to the schema is one the compiled loader does not do: it must be taught it (and this
    # test's corpus fed again) before the schema compiles.
    assert hook_names(payloads.MessageBody) == KNOWN_HOOKS
