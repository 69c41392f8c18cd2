"""Marshmallow schemas of the API's bodies and query strings; the Cloud API message body is messaging's
(saas.messaging.outbound.payloads)."""
from __future__ import annotations

from marshmallow import fields, pre_load, validate

from saas.ids import MAX_ID
# The Cloud API's message body is checked and normalised by messaging, for every sender: MessageBody is
# its schema (the send endpoints' and the OpenAPI document's).
from saas.messaging.outbound.payloads import Lenient, MessageBody, http_url


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
