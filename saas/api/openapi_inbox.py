"""The inbox's part of the OpenAPI document: /api/v1/threads and what it answers (saas.api.inbox)."""
from __future__ import annotations

from marshmallow import Schema, fields

from saas.ids import MAX_ID

ERRORS = {
    400: "The request is invalid; `details` says which field.",
    401: "Missing, malformed, unknown or revoked API key.",
    402: "The plan's quota is used up, or the subscription needs a payment.",
    403: "The plan does not include the inbox, or the account is suspended.",
    404: "No such thread (or member) for this account.",
    405: "Method not allowed.",
    409: "`window_closed`: the customer's 24-hour window has closed; only a template may be sent.",
    413: "The body is larger than MAX_REQUEST_BYTES.",
    429: "Too many requests (the plan's rate, or WhatsApp's pair rate); see Retry-After.",
    502: "WhatsApp refused or failed the reply (the failed message is in the thread).",
    504: "WhatsApp did not answer in time.",
}
READ = (400, 401, 403, 404, 405, 413, 429)
REPLY = (400, 401, 402, 403, 404, 405, 409, 413, 429, 502, 504)


class Thread(Schema):
    id = fields.Integer(required=True, metadata={"minimum": 1})
    object = fields.String(required=True, metadata={"enum": ["thread"]})
    wa_id = fields.String(required=True)
    name = fields.String(required=True, allow_none=True)
    contact_id = fields.Integer(required=True, allow_none=True)
    status = fields.String(required=True, metadata={"enum": ["open", "pending", "resolved"]})
    assignee_id = fields.Integer(required=True, allow_none=True)
    unread = fields.Integer(required=True)
    window_expires_at = fields.String(required=True, allow_none=True)
    window_seconds_left = fields.Integer(required=True, metadata={
        "description": "Seconds left in the free customer-service window (0: closed)."})
    waiting_since = fields.String(required=True, allow_none=True)
    last_message_at = fields.String(required=True, allow_none=True)
    last_preview = fields.String(required=True)
    created_at = fields.String(required=True)


class Entry(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"enum": ["message", "note", "rule_run", "event"]})
    direction = fields.String(required=True, allow_none=True)
    author = fields.String(required=True, metadata={
        "enum": ["customer", "agent", "automation", "api", "broadcast", "system"]})
    author_user_id = fields.Integer(required=True, allow_none=True)
    type = fields.String(required=True)
    text = fields.String(required=True)
    content = fields.Dict(required=True)
    status = fields.String(required=True, allow_none=True, metadata={
        "description": "Delivery of an outbound message: accepted, sent, delivered, read (never backwards), failed."})
    error_code = fields.Integer(required=True, allow_none=True)
    error_title = fields.String(required=True, allow_none=True)
    message_id = fields.Integer(required=True, allow_none=True)
    wa_message_id = fields.String(required=True, allow_none=True)
    at = fields.String(required=True, metadata={"description": "When it happened by WhatsApp's clock."})


class ThreadDetail(Thread):
    window_open = fields.Boolean(required=True)
    messages = fields.List(fields.Nested(Entry), required=True)


class ThreadList(Schema):
    data = fields.List(fields.Nested(Thread), required=True)
    has_more = fields.Boolean(required=True)
    next_cursor = fields.Integer()
    next = fields.String()


class Media(Schema):
    id = fields.String(metadata={"maxLength": 128})
    link = fields.String(metadata={"maxLength": 2048})
    caption = fields.String(metadata={"maxLength": 1024})


class TemplateReply(Schema):
    name = fields.String(required=True, metadata={"maxLength": 512})
    language = fields.String(metadata={"maxLength": 15, "default": "en_US"})
    variables = fields.List(fields.String(metadata={"maxLength": 1024}), metadata={"maxItems": 20})


class Reply(Schema):
    type = fields.String(metadata={"enum": ["text", "image", "video", "audio", "document", "template"],
                                   "default": "text"})
    text = fields.String(metadata={"maxLength": 4096})
    buttons = fields.List(fields.String(metadata={"maxLength": 20}), metadata={
        "maxItems": 3, "description": "Quick-reply buttons under a text reply."})
    media = fields.Nested(Media)
    template = fields.Nested(TemplateReply)


class Assign(Schema):
    assignee_id = fields.Integer(required=True, allow_none=True, metadata={"description": "null unassigns."})


class Note(Schema):
    body = fields.String(required=True, metadata={"minLength": 1, "maxLength": 4096})


def _errors(codes):
    return {str(code): {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
            for code in codes}


def _ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


THREAD_ID = {"name": "thread_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 20}}


def _action(operation_id: str, summary: str, response: str = "Thread", body: str | None = None,
            errors=READ, status: str = "200") -> dict:
    operation = {"operationId": operation_id, "summary": summary, "parameters": [THREAD_ID],
                 "responses": {status: _ok(response), **_errors(errors)}}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return {"post": operation}


def inbox_paths(spec) -> None:
    """The /api/v1/threads operations, and their schemas, onto ``spec``."""
    # Nested schemas before the ones that nest them (the plugin names a nested schema when it first meets it).
    for name, schema in [("Thread", Thread), ("Entry", Entry), ("ThreadList", ThreadList),
                         ("ThreadDetail", ThreadDetail), ("TemplateReply", TemplateReply), ("Media", Media),
                         ("Reply", Reply), ("Assign", Assign), ("Note", Note)]:
        spec.components.schema(name, schema=schema)
    spec.path("/api/v1/threads", operations={"get": {
        "operationId": "listThreads", "summary": "The inbox's threads, newest first",
        "parameters": [
            {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "pending", "resolved"]}},
            {"name": "assignee", "in": "query", "description": "A member id, or `unassigned`.",
             "schema": {"type": "string", "maxLength": 20}},
            {"name": "q", "in": "query", "description": "Search the contact's name or number.",
             "schema": {"type": "string", "maxLength": 100}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                                        "default": 25}},
            {"name": "cursor", "in": "query", "description": "`next_cursor` of the previous page.",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}],
        "responses": {"200": _ok("ThreadList"), **_errors(READ)}}})
    spec.path("/api/v1/threads/{thread_id}", operations={"get": {
        "operationId": "getThread", "summary": "A thread with its latest messages, notes and events, in order",
        "parameters": [THREAD_ID], "responses": {"200": _ok("ThreadDetail"), **_errors(READ)}}})
    spec.path("/api/v1/threads/{thread_id}/assign", operations=_action("assignThread", "Assign to a member",
                                                                       body="Assign"))
    spec.path("/api/v1/threads/{thread_id}/resolve", operations=_action("resolveThread", "Resolve"))
    spec.path("/api/v1/threads/{thread_id}/reopen", operations=_action("reopenThread", "Reopen"))
    spec.path("/api/v1/threads/{thread_id}/replies", operations=_action(
        "replyToThread", "Reply to the customer (free-form only inside the 24-hour window)", "Entry", "Reply",
        REPLY, "201"))
    spec.path("/api/v1/threads/{thread_id}/notes", operations=_action(
        "addThreadNote", "An internal note (never sent)", "Entry", "Note", status="201"))
