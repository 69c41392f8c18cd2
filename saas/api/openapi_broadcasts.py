"""The broadcast operations of the OpenAPI document (saas.api.openapi): /api/v1/broadcasts and its
recipients, as saas.api.broadcasts answers them."""
from __future__ import annotations

from marshmallow import Schema, fields

from saas.broadcasts.check import REASONS
from saas.broadcasts.models import MAX_RATE, RECIPIENT_STATUSES, STATUSES
from saas.ids import MAX_ID

ERRORS = {
    400: "The request is invalid; `details` says which field.",
    401: "Missing, malformed, unknown or revoked API key.",
    402: "The subscription needs a payment for this plan feature.",
    403: "The plan does not include broadcasts (or exports), or the account is suspended; see `upgrade_url`.",
    404: "No such broadcast for this account.",
    405: "Method not allowed.",
    409: "The broadcast's state does not allow this (code broadcast_state).",
    413: "The body is larger than MAX_REQUEST_BYTES.",
    429: "Too many requests; see Retry-After.",
}


class Template(Schema):
    name = fields.String(required=True)
    language = fields.String(required=True)
    category = fields.String(metadata={"enum": ["MARKETING", "UTILITY", "AUTHENTICATION"]})


class Schedule(Schema):
    at = fields.String(required=True, metadata={"description": "The UTC instant."})
    local = fields.String(required=True, allow_none=True)
    timezone = fields.String(required=True)
    recurrence = fields.String(required=True, allow_none=True, metadata={"enum": ["daily", "weekly", None]})


class CheckProgress(Schema):
    checked = fields.Integer(required=True, metadata={"description": "Contacts the check has read."})
    audience = fields.Integer(required=True, metadata={"description": "About how many the audience names."})
    error = fields.String(required=True, allow_none=True, metadata={
        "description": "Why the last check stopped (the broadcast is a draft without a check: run it again)."})


class Broadcast(Schema):
    id = fields.Integer(required=True)
    object = fields.String(required=True, metadata={"enum": ["broadcast"]})
    name = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    phone_number_id = fields.String(required=True, allow_none=True)
    template = fields.Nested(Template, required=True)
    variables = fields.Dict(required=True)
    audience = fields.Dict(required=True)
    schedule = fields.Nested(Schedule, required=True, allow_none=True)
    messages_per_second = fields.Integer(required=True)
    retry_per_user_limit = fields.Boolean(required=True)
    check = fields.Dict(required=True, allow_none=True, metadata={
        "description": "The check before sending: audience, recipients, dropped by reason (" + ", ".join(REASONS)
                       + "), three samples with their variables, the price estimate, the limits applied."})
    checked_at = fields.String(required=True, allow_none=True)
    check_progress = fields.Nested(CheckProgress, required=True, allow_none=True, metadata={
        "description": "While the status is `checking` (an audience past BROADCAST_CHECK_INLINE_MAX is checked "
                       "by a job): how far the check got; `check` is null until it is ready."})
    recipients_total = fields.Integer(required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True, metadata={
        "description": "Recipients by status: " + ", ".join(RECIPIENT_STATUSES) + "."})
    series_id = fields.Integer(required=True, allow_none=True)
    created_at = fields.String(required=True)
    started_at = fields.String(required=True, allow_none=True)
    finished_at = fields.String(required=True, allow_none=True)


class BroadcastList(Schema):
    data = fields.List(fields.Nested(Broadcast), required=True)
    has_more = fields.Boolean(required=True)
    next = fields.String()


class RecipientError(Schema):
    code = fields.String(required=True)
    title = fields.String(required=True, allow_none=True)


class Recipient(Schema):
    id = fields.Integer(required=True)
    object = fields.String(required=True, metadata={"enum": ["broadcast_recipient"]})
    contact_id = fields.Integer(required=True)
    wa_id = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(RECIPIENT_STATUSES)})
    skip_reason = fields.String(required=True, allow_none=True)
    error = fields.Nested(RecipientError, required=True, allow_none=True)
    variables = fields.Dict(required=True)
    attempts = fields.Integer(required=True)
    message_id = fields.Integer(required=True, allow_none=True)
    wa_message_id = fields.String(required=True, allow_none=True)
    sent_at = fields.String(required=True, allow_none=True)
    delivered_at = fields.String(required=True, allow_none=True)
    read_at = fields.String(required=True, allow_none=True)
    failed_at = fields.String(required=True, allow_none=True)


class RecipientList(Schema):
    data = fields.List(fields.Nested(Recipient), required=True)
    has_more = fields.Boolean(required=True)
    next = fields.String()


CREATE = {"type": "object", "required": ["template", "audience"], "properties": {
    "name": {"type": "string", "maxLength": 200},
    "phone_number_id": {"type": "string", "maxLength": 64,
                        "description": "The sending number (needed when the account has several)."},
    "template": {"type": "object", "required": ["name", "language"], "properties": {
        "name": {"type": "string", "maxLength": 512}, "language": {"type": "string", "maxLength": 15}}},
    "variables": {"type": "object", "description": "Per template variable (\"body.1\", \"header.1\", "
                  "\"body.first_name\"): {\"field\": \"name\" | \"wa_id\" | \"attr:<key>\", \"default\": ...} or "
                  "{\"value\": ...}.", "additionalProperties": {"type": "object", "properties": {
                      "field": {"type": "string"}, "value": {"type": "string", "maxLength": 1024},
                      "default": {"type": "string", "maxLength": 1024}}}},
    "audience": {"type": "object", "description": "Who: labels, contact_ids, wa_ids (an uploaded list, at most "
                 "10,000) or all: true; narrowed by country (ISO codes) and attributes (equal values).",
                 "properties": {"all": {"type": "boolean"}, "labels": {"type": "array", "items": {"type": "string"}},
                                "contact_ids": {"type": "array", "items": {"type": "integer"}},
                                "wa_ids": {"type": "array", "items": {"type": "string"}},
                                "country": {"type": "array", "items": {"type": "string"}},
                                "attributes": {"type": "object"}}},
    "schedule": {"type": "object", "description": "Send at a wall-clock time in a time zone, once or daily/weekly.",
                 "properties": {"at": {"type": "string", "example": "2026-03-28T09:00"},
                                "timezone": {"type": "string", "example": "Europe/Istanbul"},
                                "recurrence": {"type": "string", "enum": ["daily", "weekly"]}}},
    "messages_per_second": {"type": "integer", "minimum": 1, "maximum": MAX_RATE},
    "retry_per_user_limit": {"type": "boolean", "description": "Retry WhatsApp's 131049 once, a day later."},
}}


def _errors(codes) -> dict:
    return {str(code): {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
            for code in codes}


def _ok(schema, description="OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


CHECKING = ("The audience is large: its check runs as a job. The broadcast is `checking` (see `check_progress`) "
            "until the check is ready at the Location, a draft again, to be started.")
ID = {"name": "broadcast_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 40}}
READ = (400, 401, 402, 403, 404, 405, 413, 429)
STEPS = {"start": "Confirm: send now, or at its scheduled time", "pause": "Pause after the batch under way",
         "resume": "Resume a paused broadcast", "cancel": "Cancel: recipients not yet sent are skipped",
         "check": "Run the check again (a draft's audience or the plan may have changed)"}


def paths(spec) -> None:
    """Add the broadcast schemas and operations to ``spec``."""
    for name, schema in [("Broadcast", Broadcast), ("BroadcastList", BroadcastList), ("Recipient", Recipient),
                         ("RecipientList", RecipientList)]:
        spec.components.schema(name, schema=schema)
    spec.path("/api/v1/broadcasts", operations={
        "post": {"operationId": "createBroadcast", "summary": "Create a broadcast (a draft, with its check)",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": CREATE}}},
                 "responses": {"201": _ok("Broadcast", "Created; `check` says who it would reach."),
                               "202": _ok("Broadcast", CHECKING),
                               **_errors(READ)}},
        "get": {"operationId": "listBroadcasts", "summary": "List broadcasts with their counts, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}],
                "responses": {"200": _ok("BroadcastList"), **_errors(READ)}},
    })
    spec.path("/api/v1/broadcasts/{broadcast_id}", operations={"get": {
        "operationId": "getBroadcast", "summary": "One broadcast with its check and counts", "parameters": [ID],
        "responses": {"200": _ok("Broadcast"), **_errors(READ)}}})
    for verb, summary in STEPS.items():
        checking = {"202": _ok("Broadcast", CHECKING)} if verb == "check" else {}
        spec.path(f"/api/v1/broadcasts/{{broadcast_id}}/{verb}", operations={"post": {
            "operationId": f"{verb}Broadcast", "summary": summary, "parameters": [ID],
            "responses": {"200": _ok("Broadcast"), **checking, **_errors((*READ, 409))}}})
    spec.path("/api/v1/broadcasts/{broadcast_id}/recipients", operations={"get": {
        "operationId": "listBroadcastRecipients", "summary": "Recipients and their outcomes (cursor paging, or CSV)",
        "parameters": [ID,
                       {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(RECIPIENT_STATUSES)}},
                       {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                       {"name": "format", "in": "query", "description": "csv: every recipient (plan feature "
                        "analytics_export).", "schema": {"type": "string", "enum": ["json", "csv"]}}],
        "responses": {"200": {"description": "A page of recipients, or all of them as CSV.", "content": {
            "application/json": {"schema": "RecipientList"}, "text/csv": {"schema": {"type": "string"}}}},
            **_errors(READ)}}})
