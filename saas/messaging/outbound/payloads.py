"""A Cloud API send body, checked and normalised the way every sender needs it: the API's endpoints,
a batch (``SendService.send_many``), the CLI and workers.

What is checked: the body is a JSON object that can be stored and forwarded
(``json_problem``), read as Graph reads it (``graph_form``: nulls dropped, an
encoded object decoded), and valid for its message type (``MessageBody``:
the recipient 7 to 15 digits, each type's own object). What comes out
(``Outbound``) is the payload the send path meters and sends (the recipient
normalised, only the type's own object), the recipient as written, and the
body a live number forwards. Refusals are ``InvalidRequest`` with the same
messages and per-field details the API has always answered.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from saas.errors import InvalidRequest
from saas.messaging.outbound import compiled_bodies, types

MESSAGE_TYPES = types.NAMES
# Every interactive type of the Cloud API's messages reference, the Calling API's buttons and media carousels
# included (pywa, for one, sends each of them).
INTERACTIVE_TYPES = ("button", "list", "cta_url", "product", "product_list", "flow",
                     "location_request_message", "address_message", "catalog_message", "carousel",
                     "voice_call", "call_permission_request", "request_contact_info")
# ASCII only: \d and str.isdigit() also take Arabic-Indic, fullwidth and other digits, which would
# name the same contact as another string (another conversation, another window, another bill).
PHONE_NOISE = re.compile(r"[ \t\-().]")
WA_ID = re.compile(r"^[0-9]{7,15}$")
MAX_DEPTH = 32


def json_problem(value) -> str | None:
    """Why a parsed body cannot be stored or forwarded, or None.

    JSON admits what text columns and WhatsApp do not: NUL characters, lone
    surrogates, numbers too large for a float, and nesting deep enough to
    exhaust the stack of whatever walks it next.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"The request body is nested more than {MAX_DEPTH} levels deep."
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "Strings in the request body must not contain NUL characters."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "The request body contains text that is not valid Unicode."
        elif isinstance(item, float) and not math.isfinite(item):
            return "Numbers in the request body must be finite."
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**53:
            return "A number in the request body is too large."
    return None


def normalised_recipient(to: str) -> str | None:
    """The recipient's digits (spaces, dashes, dots, parentheses and a leading + dropped), or None
    when that is not 7 to 15 ASCII digits."""
    digits = PHONE_NOISE.sub("", to).lstrip("+")
    return digits if WA_ID.match(digits) else None


def without_nulls(value):
    """``value`` with every null member of every object dropped, at any depth (list items stay).

    Clients write an optional field they have no value for as null (heyoo sends
    ``"caption": null``, ``"filename": null``, ``"components": null``); Graph
    reads that as the field left out, and so do we.
    """
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def graph_form(body: dict) -> dict:
    """A message body as Graph reads it, which is what is validated, metered and forwarded.

    Null members are absent, and the message's own object may come JSON-encoded
    in a string (whatsapp-api-js sends ``"contacts": "[{...}]"``), as Graph
    accepts for any object or array parameter. Raises ValidationError when the
    decoded object holds what no body may (see ``json_problem``).
    """
    body = without_nulls(body)
    kind = body.get("type", "text")
    encoded = body.get(kind) if isinstance(kind, str) and kind in MESSAGE_TYPES else None
    if isinstance(encoded, str):
        try:
            decoded = json.loads(encoded)
        except (ValueError, RecursionError):
            return body  # not JSON: the field's own validation says what is wrong
        if isinstance(decoded, (dict, list)):
            problem = json_problem(decoded)
            if problem:
                raise ValidationError(problem, kind)
            body = {**body, kind: without_nulls(decoded)}
    return body


def load(schema, data):
    """Validate ``data`` with a marshmallow schema; InvalidRequest with per-field details."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise InvalidRequest("Some fields are missing or invalid.", details=exc.normalized_messages()) from None
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.") from None


class Lenient(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def null_is_absent(self, data, **kwargs):
        return without_nulls(data) if isinstance(data, dict) else data


def http_url(value: str) -> None:
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value or "", re.IGNORECASE):
        raise ValidationError("Must be an http or https URL.")


class TextBody(Lenient):
    body = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    preview_url = fields.Boolean(load_default=False)


class Language(Lenient):
    code = fields.String(required=True, validate=validate.Length(min=2, max=15))
    policy = fields.String(validate=validate.OneOf(["deterministic"]))


class TemplateBody(Lenient):
    name = fields.String(required=True, validate=validate.Length(min=1, max=512))
    language = fields.Nested(Language, required=True)
    components = fields.List(fields.Dict(), validate=validate.Length(max=20))


class MediaBody(Lenient):
    id = fields.String(validate=validate.Length(min=1, max=128))
    link = fields.String(validate=[validate.Length(max=2048), http_url])
    caption = fields.String(validate=validate.Length(max=1024))
    filename = fields.String(validate=validate.Length(max=240))

    @validates_schema
    def id_or_link(self, data, **kwargs):
        if bool(data.get("id")) == bool(data.get("link")):
            raise ValidationError("Give exactly one of 'id' or 'link'.", "_schema")


class LocationBody(Lenient):
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    name = fields.String(validate=validate.Length(max=1000))
    address = fields.String(validate=validate.Length(max=1000))


class ContactName(Lenient):
    formatted_name = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class ContactCard(Lenient):
    name = fields.Nested(ContactName, required=True)


class InteractiveText(Lenient):
    text = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class InteractiveBody(Lenient):
    type = fields.String(required=True, validate=validate.OneOf(INTERACTIVE_TYPES))
    body = fields.Nested(InteractiveText)
    header = fields.Dict()
    footer = fields.Dict()
    action = fields.Dict(required=True)


class ReactionBody(Lenient):
    message_id = fields.String(required=True, validate=validate.Length(min=1, max=256))
    emoji = fields.String(required=True, validate=validate.Length(max=16))


class Context(Lenient):
    message_id = fields.String(required=True, validate=validate.Length(min=1, max=256))


# The object each message type carries; one entry per type in saas.messaging.outbound.types.
TYPE_BODIES = {
    "text": lambda: fields.Nested(TextBody),
    "template": lambda: fields.Nested(TemplateBody),
    "location": lambda: fields.Nested(LocationBody),
    "contacts": lambda: fields.List(fields.Nested(ContactCard), validate=validate.Length(min=1, max=20)),
    "interactive": lambda: fields.Nested(InteractiveBody),
    "reaction": lambda: fields.Nested(ReactionBody),
    **{name: (lambda: fields.Nested(MediaBody)) for name in types.MEDIA},
}
assert set(TYPE_BODIES) == set(types.NAMES), "every message type needs its body schema"


class _MessageEnvelope(Lenient):
    """The Cloud API's POST /{phone_number_id}/messages body, less the per-type objects."""

    messaging_product = fields.String(required=True, validate=validate.Equal("whatsapp"))
    recipient_type = fields.String(load_default="individual", validate=validate.OneOf(["individual"]))
    to = fields.String(required=True, validate=validate.Length(min=1, max=32),
                       metadata={"pattern": r"^\+?[0-9][0-9 ()\-.]{6,30}$",
                                 "description": "The recipient's number, international format: 7 to 15 ASCII digits "
                                                "(spaces, dashes, dots, parentheses and a leading + are ignored)."})
    type = fields.String(load_default="text", validate=validate.OneOf(MESSAGE_TYPES))
    context = fields.Nested(Context)
    biz_opaque_callback_data = fields.String(validate=validate.Length(max=512))

    @pre_load
    def null_is_absent(self, data, **kwargs):
        # Lenient's hook, overridden: the whole body as Graph reads it (nulls dropped at any depth too).
        return graph_form(data) if isinstance(data, dict) else data

    @validates_schema
    def type_object_present(self, data, **kwargs):
        kind = data.get("type", "text")
        if kind in MESSAGE_TYPES and data.get(kind) is None:
            raise ValidationError(f"A '{kind}' message needs a '{kind}' object.", kind)
        if kind in types.UNCAPTIONED_MEDIA and (data.get(kind) or {}).get("caption"):
            raise ValidationError(f"'{kind}' messages take no caption.", kind)

    @validates_schema
    def recipient(self, data, **kwargs):
        to = data.get("to")
        if to is not None and normalised_recipient(to) is None:
            raise ValidationError("Must be a phone number in international format, 7 to 15 digits.", "to")

    @post_load
    def normalise(self, data, **kwargs):
        data["to_input"] = data["to"]
        data["to"] = PHONE_NOISE.sub("", data["to"]).lstrip("+")
        kind = data["type"]
        # Only the object for the message's own type travels on.
        for other in MESSAGE_TYPES:
            if other != kind:
                data.pop(other, None)
        return data


MessageBody = type("MessageBody", (_MessageEnvelope,), {
    "__doc__": "The Cloud API's POST /{phone_number_id}/messages body.",
    "__module__": __name__,
    **{name: make() for name, make in TYPE_BODIES.items()}})


@dataclass(frozen=True)
class Outbound:
    """A send body as the send path takes it."""

    payload: dict    # validated: the recipient normalised, only the type's own object
    to_input: str    # the recipient as the sender wrote it (the Cloud API answers with it)
    upstream: dict   # the body as Graph reads it: what a live number forwards (fields we do not read too)


_MESSAGE_BODY = MessageBody()


def compiled_loader(schema_class):
    """``schema_class`` (``MessageBody`` or a schema adding plain fields to it) compiled: its result for a body
    that passes, or None (saas.messaging.outbound.compiled_bodies)."""
    return compiled_bodies.send_body_loader(schema_class, graph_form=graph_form, recipient=normalised_recipient,
                                            message_types=MESSAGE_TYPES, uncaptioned=types.UNCAPTIONED_MEDIA)


def outbound(body: dict, schema=None) -> Outbound:
    """``body`` (a JSON object) checked with ``schema`` (default ``MessageBody``) and split for the
    send path. Raises InvalidRequest as the API answers it (per-field details)."""
    schema = schema or _MESSAGE_BODY
    # The common bodies, checked by the schema compiled to plain code; the rest, and every refusal, by marshmallow.
    compiled = compiled_loader(type(schema))
    data = (compiled and compiled(body)) or load(schema, body)
    to_input = data.pop("to_input")
    return Outbound(data, to_input, graph_form(body))


def outbound_item(item) -> Outbound:
    """One message of a batch: first what the API checks of a request body (a JSON object that can be
    stored and forwarded), then ``outbound``. Raises InvalidRequest with the API's own messages."""
    if not isinstance(item, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    problem = json_problem(item)
    if problem:
        raise InvalidRequest(problem)
    return outbound(item)


def forwarded_body(payload: dict, upstream: dict | None) -> dict:
    """What a live number sends to WhatsApp: the tenant's own body, our fields taken out, the
    recipient and type as validated (the contact metered is the contact sent to)."""
    if upstream is None:
        return payload
    body = {k: v for k, v in upstream.items() if k != "phone_number_id"}
    body["to"] = payload["to"]
    body["type"] = payload["type"]
    return body
