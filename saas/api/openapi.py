"""The OpenAPI 3.1 document of /api/v1 and the Cloud-API-compatible endpoint, built from the marshmallow schemas.

Request bodies are the schemas the views load with (saas.api.schemas); the response schemas below describe
what saas.api.serializers and the error envelopes write (broadcasts': saas.api.openapi_broadcasts). Served
at /api/v1/openapi.json (no key needed) and shown on the portal's /docs page.
"""
from __future__ import annotations

import functools

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify, render_template
from marshmallow import Schema, fields

from saas.api import (
    consent_openapi, openapi_analytics, openapi_automation, openapi_broadcasts, openapi_contacts, openapi_exports,
    openapi_inbox,
    openapi_orders, schemas,
)
from saas.api.openapi_responses import GRAPH_ERRORS, READ_ERRORS, SEND_ERRORS, UPLOAD_ERRORS
from saas.api.openapi_responses import errors as _errors, ok as _ok
from saas.ids import MAX_ID

bp = Blueprint("openapi", __name__)


# -- responses: what the views write -----------------------------------------------------------------


class MessageError(Schema):
    code = fields.Integer(required=True)
    title = fields.String(required=True, allow_none=True)
    details = fields.String(required=True, allow_none=True)


class Message(Schema):
    id = fields.Integer(required=True, metadata={"minimum": 1})
    object = fields.String(required=True, metadata={"enum": ["message"]})
    direction = fields.String(required=True, metadata={"enum": ["in", "out"]})
    phone_number_id = fields.String(required=True)
    wa_id = fields.String(required=True)
    type = fields.String(required=True)
    summary = fields.String(required=True)
    wa_message_id = fields.String(required=True, allow_none=True)
    status = fields.String(required=True)
    message_status = fields.String(required=True, allow_none=True, metadata={
        "description": "A template send's status as WhatsApp answered it (accepted, held_for_quality_assessment, "
                       "paused)."})
    error = fields.Nested(MessageError, required=True, allow_none=True)
    conversation_id = fields.Integer(required=True, allow_none=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    sent_at = fields.String(required=True, allow_none=True)
    delivered_at = fields.String(required=True, allow_none=True)
    read_at = fields.String(required=True, allow_none=True)
    failed_at = fields.String(required=True, allow_none=True)


class MessageList(Schema):
    data = fields.List(fields.Nested(Message), required=True)
    has_more = fields.Boolean(required=True)
    next = fields.String(metadata={"description": "The next page's path, when has_more."})


class Number(Schema):
    object = fields.String(required=True, metadata={"enum": ["phone_number"]})
    phone_number_id = fields.String(required=True)
    display_phone_number = fields.String(required=True)
    verified_name = fields.String(required=True, allow_none=True)
    mode = fields.String(required=True, metadata={"enum": ["sandbox", "live"]})
    waba_id = fields.String(required=True, allow_none=True)
    quality_rating = fields.String(required=True, allow_none=True)
    messaging_limit_tier = fields.String(required=True, allow_none=True)
    last_checked_at = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True)


class NumberList(Schema):
    data = fields.List(fields.Nested(Number), required=True)


class Period(Schema):
    start = fields.String(required=True)
    end = fields.String(required=True)


class PlanRef(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class Usage(Schema):
    period = fields.Nested(Period, required=True)
    plan = fields.Nested(PlanRef, required=True)
    metric = fields.String(required=True, metadata={
        "description": "What quota and used count: the unit the plan prices, conversations or messages."})
    quota = fields.Integer(required=True)
    used = fields.Integer(required=True)
    remaining = fields.Integer(required=True)
    overage = fields.Integer(required=True)
    hard_cap = fields.Boolean(required=True)
    overage_price_cents = fields.Float(required=True, allow_none=True, metadata={
        "description": "Price of each unit past the quota, in cents (fractions allowed); null: hard cap."})
    overage_price_cents_decimal = fields.String(required=True, allow_none=True, metadata={
        "description": "The same price exactly, as a decimal string (Stripe's unit_amount_decimal)."})
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True, metadata={
        "description": "The priced units by category (conversations opened, or priced messages)."})
    messages = fields.Integer(required=True)


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine-readable code."})
    message = fields.String(required=True)
    details = fields.Raw(metadata={"description": "Per-field problems, or facts about the refusal."})
    upgrade_url = fields.String(metadata={"description": "Where the plan can be changed (402/403 of a plan)."})


class Error(Schema):
    error = fields.Nested(ErrorBody, required=True)


class GraphErrorData(Schema):
    messaging_product = fields.String(required=True)
    details = fields.String(required=True)


class GraphErrorBody(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True)
    code = fields.Integer(required=True)
    error_subcode = fields.Integer()
    error_data = fields.Nested(GraphErrorData, required=True)
    fbtrace_id = fields.String(required=True)
    reason = fields.String(required=True, metadata={"description": "Our code for the refusal."})
    details = fields.Raw()
    upgrade_url = fields.String()


class GraphError(Schema):
    error = fields.Nested(GraphErrorBody, required=True)


class CloudContact(Schema):
    input = fields.String(required=True)
    wa_id = fields.String(required=True)


class CloudMessageRef(Schema):
    id = fields.String(required=True)
    message_status = fields.String()


class CloudSent(Schema):
    messaging_product = fields.String(required=True)
    contacts = fields.List(fields.Nested(CloudContact), required=True)
    messages = fields.List(fields.Nested(CloudMessageRef), required=True)


class Success(Schema):
    success = fields.Boolean(required=True)


class MediaId(Schema):
    id = fields.String(required=True)


class MediaInfo(Schema):
    messaging_product = fields.String()
    url = fields.String(metadata={"description": "Ours: GET it with the same API key for the bytes."})
    mime_type = fields.String()
    sha256 = fields.String()
    file_size = fields.Integer()
    id = fields.String(required=True)


class Throughput(Schema):
    level = fields.String()


class NumberInfo(Schema):
    id = fields.String(required=True)
    display_phone_number = fields.String()
    verified_name = fields.String()
    quality_rating = fields.String()
    messaging_limit_tier = fields.String()
    code_verification_status = fields.String()
    platform_type = fields.String()
    name_status = fields.String()
    throughput = fields.Nested(Throughput)


class BusinessProfile(Schema):
    messaging_product = fields.String()
    about = fields.String()
    address = fields.String()
    description = fields.String()
    email = fields.String()
    profile_picture_url = fields.String()
    websites = fields.List(fields.String())
    vertical = fields.String()


class BusinessProfiles(Schema):
    data = fields.List(fields.Nested(BusinessProfile), required=True)


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Retrying with the same key and body sends once and replays the first answer (200).",
    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$", "minLength": 1, "maxLength": 255},
}


def build_spec(version: str = "1.0.0") -> dict:
    """The OpenAPI 3.1 document of /api/v1 and the Cloud-API-compatible endpoints."""
    spec = _new_spec(version)
    _v1_paths(spec)
    openapi_contacts.add(spec)
    _cloud_send_path(spec)
    _cloud_paths(spec)
    consent_openapi.add_paths(spec, _ok, _errors, READ_ERRORS)  # an area's calls, with their own schemas
    openapi_broadcasts.paths(spec)
    openapi_inbox.inbox_paths(spec)
    openapi_automation.paths(spec)
    openapi_orders.paths(spec)
    openapi_analytics.paths(spec)
    openapi_exports.paths(spec)
    document = spec.to_dict()
    document["security"] = [{"bearer": []}]
    return document


def _new_spec(version: str) -> APISpec:
    spec = APISpec(
        title="Relay WhatsApp Business API", version=version, openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Send and read WhatsApp messages for your account. Authenticate with an API key from "
                             "the portal's API keys page: `Authorization: Bearer wsk_...`. Errors under /api/v1 "
                             "use the envelope `{\"error\": {\"code\", \"message\", \"details\"}}`; the "
                             "Cloud-API-compatible endpoint answers in the Graph API's error shape."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "description": "An API key: wsk_..."})
    for name, schema in [("SendMessage", schemas.V1Send), ("CloudMessage", schemas.MessageBody),
                         ("MarkRead", schemas.MarkRead), ("Message", Message), ("MessageList", MessageList),
                         ("Number", Number), ("NumberList", NumberList), ("Usage", Usage), ("Error", Error),
                         ("GraphError", GraphError), ("CloudSent", CloudSent), ("Success", Success),
                         ("MediaId", MediaId), ("MediaInfo", MediaInfo), ("NumberInfo", NumberInfo),
                         ("BusinessProfiles", BusinessProfiles), ("BusinessProfileUpdate", schemas.BusinessProfileUpdate)]:
        spec.components.schema(name, schema=schema)
    return spec


def _v1_paths(spec: APISpec) -> None:
    spec.path("/api/v1/messages", operations={
        "post": {
            "operationId": "sendMessage", "summary": "Send a message",
            "description": "The Cloud API's message body, plus `phone_number_id` when the account has several numbers.",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": "SendMessage"}}},
            "responses": {"201": _ok("Message", "Sent (or queued); Location names it."),
                          "200": _ok("Message", "A replay of an earlier send with this Idempotency-Key."),
                          **_errors(SEND_ERRORS)},
        },
        "get": {
            "operationId": "listMessages", "summary": "List messages, newest first",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                                            "default": 25}},
                {"name": "before", "in": "query", "description": "Only messages with a smaller id (paging).",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
            ],
            "responses": {"200": _ok("MessageList"), **_errors(READ_ERRORS)},
        },
    })
    spec.path("/api/v1/messages/{message_id}", operations={"get": {
        "operationId": "getMessage", "summary": "One message",
        "parameters": [{"name": "message_id", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 40}}],
        "responses": {"200": _ok("Message"), **_errors(READ_ERRORS)},
    }})
    spec.path("/api/v1/numbers", operations={"get": {
        "operationId": "listNumbers", "summary": "The account's phone numbers",
        "responses": {"200": _ok("NumberList"), **_errors(READ_ERRORS)},
    }})
    spec.path("/api/v1/usage", operations={"get": {
        "operationId": "getUsage", "summary": "Usage this billing period against the plan",
        "responses": {"200": _ok("Usage"), **_errors(READ_ERRORS)},
    }})


def _cloud_send_path(spec: APISpec) -> None:
    spec.path("/{version}/{phone_number_id}/messages", operations={"post": {
        "operationId": "cloudSend", "summary": "Cloud-API-compatible send or mark-as-read",
        "description": "WhatsApp's `POST /{version}/{phone_number_id}/messages`: point a Cloud API client at "
                       "this server. A body with `status: read` and no `to` marks a received message read.",
        "parameters": [VERSION, {"name": "phone_number_id", "in": "path", "required": True,
                                 "schema": {"type": "string", "maxLength": 64}}, IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": "#/components/schemas/CloudMessage"}, {"$ref": "#/components/schemas/MarkRead"}]}}}},
        "responses": {"200": {"description": "Sent, or marked read.", "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": "#/components/schemas/CloudSent"}, {"$ref": "#/components/schemas/Success"}]}}}},
            **_errors(SEND_ERRORS, "GraphError")},
    }})


VERSION = {"name": "version", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": r"^v[0-9]{1,3}(\.[0-9]{1,3})?$", "example": "v23.0"}}
FIELDS = {"name": "fields", "in": "query", "required": False, "description": "Comma-separated field names.",
          "schema": {"type": "string", "maxLength": 500}}


def _id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def _cloud_paths(spec) -> None:
    """The Cloud API's calls beside sends (saas.api.cloud_media)."""
    number_id, on_number = _id("phone_number_id"), {"name": "phone_number_id", "in": "query", "required": False,
                                                    "schema": {"type": "string", "maxLength": 64}}
    spec.path("/{version}/{phone_number_id}/media", operations={"post": {
        "operationId": "cloudUploadMedia", "summary": "Upload media from a live number (plan feature media)",
        "description": "Forwarded to WhatsApp with the number's token (never retried). At most MEDIA_MAX_BYTES.",
        "parameters": [VERSION, number_id],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "type", "messaging_product"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           "type": {"type": "string", "maxLength": 191, "example": "image/jpeg"},
                           "messaging_product": {"type": "string", "enum": ["whatsapp"]}}}}}},
        "responses": {"200": _ok("MediaId", "Uploaded; the media id."), **_errors(UPLOAD_ERRORS, "GraphError")},
    }})
    spec.path("/{version}/{object_id}", operations={
        "get": {"operationId": "cloudGetObject", "summary": "A number's info, or a media's URL and metadata",
                "description": "One of the account's numbers answers its info (`fields` picks them); any other id "
                               "is one of the account's media ids, whose `url` is ours to GET with the API key.",
                "parameters": [VERSION, _id("object_id"), FIELDS, on_number],
                "responses": {"200": {"description": "The number's info or the media's.", "content": {
                    "application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/NumberInfo"},
                                                              {"$ref": "#/components/schemas/MediaInfo"}]}}}},
                              **_errors(GRAPH_ERRORS, "GraphError")}},
        "delete": {"operationId": "cloudDeleteMedia", "summary": "Delete a media id",
                   "parameters": [VERSION, _id("object_id"), on_number],
                   "responses": {"200": _ok("Success"), **_errors(GRAPH_ERRORS, "GraphError")}},
    })
    spec.path("/{version}/media/{media_id}/content", operations={"get": {
        "operationId": "cloudMediaContent", "summary": "A media's bytes, streamed from WhatsApp",
        "parameters": [VERSION, _id("media_id")],
        "responses": {"200": {"description": "The bytes, with WhatsApp's Content-Type.",
                              "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                      **_errors(GRAPH_ERRORS, "GraphError")},
    }})
    spec.path("/{version}/{phone_number_id}/whatsapp_business_profile", operations={
        "get": {"operationId": "cloudGetBusinessProfile", "summary": "The number's WhatsApp Business profile",
                "parameters": [VERSION, number_id, FIELDS],
                "responses": {"200": _ok("BusinessProfiles"), **_errors(GRAPH_ERRORS, "GraphError")}},
        "post": {"operationId": "cloudUpdateBusinessProfile", "summary": "Change a live number's profile",
                 "parameters": [VERSION, number_id],
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": "BusinessProfileUpdate"}}},
                 "responses": {"200": _ok("Success"), **_errors(GRAPH_ERRORS, "GraphError")}},
    })


@functools.cache
def document() -> dict:
    return build_spec()


@bp.get("/api/v1/openapi.json")
def openapi_json():
    return jsonify(document())


@bp.get("/docs")
def docs():
    """The API reference, server-rendered from the document (no script: the CSP allows none inline)."""
    doc = document()
    operations = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            operations.append({"path": path, "method": method.upper(), **op})
    return render_template("portal/docs.html", doc=doc, operations=operations,
                           schemas=doc["components"]["schemas"])
