"""Marshmallow schemas for the Cloud API message body and the v1 query strings."""
from __future__ import annotations

import json
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from saas.api.requests import json_problem
from saas.ids import MAX_ID
from saas.messaging.outbound import types

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
    decoded object holds what no body may (see saas.api.requests.json_problem).
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
        if to is not None and not WA_ID.match(PHONE_NOISE.sub("", to).lstrip("+")):
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
    **{name: make() for name, make in TYPE_BODIES.items()}})


class TypingIndicator(Lenient):
    """Shown to the contact until the reply is sent (or 25 seconds pass); WhatsApp's only kind is text."""

    type = fields.String(required=True, validate=validate.Equal("text"))


class MarkRead(Lenient):
    messaging_product = fields.String(required=True, validate=validate.Equal("whatsapp"))
    status = fields.String(required=True, validate=validate.Equal("read"))
    message_id = fields.String(required=True, validate=validate.Length(min=1, max=256))
    typing_indicator = fields.Nested(TypingIndicator)


class V1Send(MessageBody):
    """POST /api/v1/messages: the Cloud API body plus which number sends it."""

    phone_number_id = fields.String(validate=validate.Length(min=1, max=64))


class Pagination(Lenient):
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    before = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))

    @pre_load
    def drop_empty(self, data, **kwargs):
        return {k: v for k, v in data.items() if v != ""}


VERTICALS = ("UNDEFINED", "OTHER", "ALCOHOL", "APPAREL", "AUTO", "BEAUTY", "EDU", "ENTERTAIN", "EVENT_PLAN",
             "FINANCE", "GOVT", "GROCERY", "HEALTH", "HOTEL", "NONPROFIT", "NOT_A_BIZ", "ONLINE_GAMBLING",
             "OTC_DRUGS", "PHYSICAL_GAMBLING", "PROF_SERVICES", "RESTAURANT", "RETAIL", "TRAVEL")


class BusinessProfileUpdate(Lenient):
    """POST /{phone_number_id}/whatsapp_business_profile: the fields WhatsApp lets a business set."""

    messaging_product = fields.String(required=True, validate=validate.Equal("whatsapp"))
    about = fields.String(validate=validate.Length(min=1, max=139))
    address = fields.String(validate=validate.Length(max=256))
    description = fields.String(validate=validate.Length(max=512))
    email = fields.String(validate=[validate.Length(max=128), validate.Email()])
    profile_picture_handle = fields.String(validate=validate.Length(min=1, max=1024))
    vertical = fields.String(validate=validate.OneOf(VERTICALS))
    websites = fields.List(fields.String(validate=[validate.Length(max=256), http_url]),
                           validate=validate.Length(max=2))
