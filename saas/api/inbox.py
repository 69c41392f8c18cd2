"""/api/v1/threads: the inbox over the API (list, read, assign, resolve, reopen, reply, notes).

Every thread is the API key's tenant's (another tenant's is 404 ``not_found``); the plan must include the
inbox (403 ``feature_not_in_plan``). A reply is subject to the customer's 24-hour window: free-form past it
is 409 ``window_closed`` (send a template), and it goes through the send service like any send.
"""
from __future__ import annotations

from flask import current_app, jsonify, request, url_for
from marshmallow import fields, validate

from saas.api.requests import current_rights, current_tenant, json_object, load
from saas.api.schemas import Lenient
from saas.errors import InvalidRequest
from saas.ids import MAX_ID, parse_id
from saas.inbox import actions, queue, replies
from saas.inbox.models import API, RESOLVED, OPEN, STATUSES
from saas.inbox.seats import FEATURE
from saas.messaging.outbound import send_service
from saas.timeutil import iso, utcnow


class ThreadFilters(Lenient):
    status = fields.String(validate=validate.OneOf(STATUSES))
    assignee = fields.String(validate=validate.Length(max=20))
    q = fields.String(validate=validate.Length(max=queue.QUERY_MAX))
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    cursor = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


filters = ThreadFilters()


def _rights():
    rights = current_rights()
    rights.require(FEATURE, "the inbox")
    return rights


def thread_json(thread, now=None) -> dict:
    left = queue.time_left(thread, now)
    return {"id": thread.id, "object": "thread", "wa_id": thread.wa_id, "name": thread.name,
            "contact_id": thread.contact_id, "status": thread.status, "assignee_id": thread.assignee_id,
            "unread": thread.unread, "window_expires_at": iso(thread.window_expires_at),
            "window_seconds_left": int(left.total_seconds()) if left else 0,
            "waiting_since": iso(thread.waiting_since), "last_message_at": iso(thread.last_message_at),
            "last_preview": thread.last_preview, "created_at": iso(thread.created_at)}


def entry_json(entry) -> dict:
    return {"id": entry.id, "kind": entry.kind, "direction": entry.direction, "author": entry.author,
            "author_user_id": entry.author_user_id, "type": entry.type, "text": entry.text, "content": entry.content,
            "status": entry.status, "error_code": entry.error_code, "error_title": entry.error_title,
            "message_id": entry.message_id, "wa_message_id": entry.wa_message_id, "at": iso(entry.at)}


def list_threads():
    _rights()
    tenant = current_tenant()
    args = load(filters, {k: v for k, v in request.args.to_dict().items() if v != ""})
    assignee = args.get("assignee")
    if assignee not in (None, "unassigned"):
        assignee = parse_id(assignee)
        if assignee is None or assignee > actions.INT32_MAX:
            raise InvalidRequest("'assignee' is a member id or 'unassigned'.", details={"assignee": ["Invalid."]})
    rows = queue.page(tenant, status=args.get("status"), assignee=assignee, q=args.get("q"),
                      limit=args["limit"] + 1, before=args.get("cursor"))
    has_more = len(rows) > args["limit"]
    rows = rows[: args["limit"]]
    now = utcnow()
    body = {"data": [thread_json(t, now) for t in rows], "has_more": has_more}
    if has_more:
        query = {k: v for k, v in args.items() if k != "cursor"}
        body["next_cursor"] = rows[-1].id
        body["next"] = url_for("api.list_threads", **query, cursor=rows[-1].id)
    return jsonify(body)


def get_thread(thread_id):
    _rights()
    tenant = current_tenant()
    thread = actions.get_thread(tenant, thread_id)
    window = replies.window_of(thread)
    body = thread_json(thread)
    body["window_open"] = window.open
    body["messages"] = [entry_json(e) for e in queue.entries(tenant, thread)]
    return jsonify(body)


def _member(body: dict):
    value = body.get("assignee_id")
    if value is None:
        return None
    user_id = parse_id(value)
    if user_id is None:
        raise InvalidRequest("'assignee_id' is a member id or null.", details={"assignee_id": ["Invalid id."]})
    return user_id


def assign(thread_id):
    _rights()
    body = json_object()
    if "assignee_id" not in body:
        raise InvalidRequest("'assignee_id' is required (null unassigns).",
                             details={"assignee_id": ["Missing data for required field."]})
    thread = actions.assign(current_tenant(), thread_id, _member(body), by=None)
    return jsonify(thread_json(thread))


def resolve(thread_id):
    _rights()
    return jsonify(thread_json(actions.set_status(current_tenant(), thread_id, RESOLVED, user_id=None)))


def reopen(thread_id):
    _rights()
    return jsonify(thread_json(actions.set_status(current_tenant(), thread_id, OPEN, user_id=None)))


def reply(thread_id):
    rights = _rights()
    tenant = current_tenant()
    body = json_object()
    thread = actions.get_thread(tenant, thread_id)
    entry_id = replies.send_reply(send_service(current_app), tenant, rights, thread, body, author=API)
    thread = actions.get_thread(tenant, thread_id)
    entry = next(e for e in queue.entries(tenant, thread) if e.id == entry_id)
    return jsonify(entry_json(entry)), 201


def add_note(thread_id):
    _rights()
    tenant = current_tenant()
    body = json_object()
    entry_id = actions.add_note(tenant, thread_id, body.get("body"), user_id=None)
    thread = actions.get_thread(tenant, thread_id)
    entry = next(e for e in queue.entries(tenant, thread) if e.id == entry_id)
    return jsonify(entry_json(entry)), 201


def register(bp) -> None:
    bp.add_url_rule("/threads", "list_threads", list_threads, methods=["GET"])
    bp.add_url_rule("/threads/<thread_id>", "get_thread", get_thread, methods=["GET"])
    bp.add_url_rule("/threads/<thread_id>/assign", "assign_thread", assign, methods=["POST"])
    bp.add_url_rule("/threads/<thread_id>/resolve", "resolve_thread", resolve, methods=["POST"])
    bp.add_url_rule("/threads/<thread_id>/reopen", "reopen_thread", reopen, methods=["POST"])
    bp.add_url_rule("/threads/<thread_id>/replies", "reply_to_thread", reply, methods=["POST"])
    bp.add_url_rule("/threads/<thread_id>/notes", "add_thread_note", add_note, methods=["POST"])
