"""/api/v1/broadcasts: create (the check in the answer), read with counts, start, pause, resume,
cancel, and the recipients' outcomes (cursor paging, or CSV with the plan's analytics_export).
Registered on the API blueprint by saas.api.routes (its key, rate limit and error envelope)."""
from __future__ import annotations

from flask import Response, current_app, jsonify, request, stream_with_context, url_for
from marshmallow import fields, validate

from saas.api.requests import current_rights, current_tenant, json_object, load
from saas.broadcasts import export, services
from saas.broadcasts.models import CHECKING, RECIPIENT_STATUSES
from saas.extensions import db
from saas.ids import MAX_ID
from saas.messaging.models import PhoneNumber
from saas.messaging.outbound.payloads import Lenient
from saas.timeutil import iso


class Listing(Lenient):
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    before = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


class RecipientQuery(Lenient):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))
    status = fields.String(validate=validate.OneOf(RECIPIENT_STATUSES))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


listing, recipient_query = Listing(), RecipientQuery()


def broadcast_json(broadcast, counts: dict | None = None) -> dict:
    number = db.session.get(PhoneNumber, broadcast.phone_number_id)
    schedule = None
    if broadcast.schedule_at is not None:
        schedule = {"at": iso(broadcast.schedule_at), "local": broadcast.schedule_local,
                    "timezone": broadcast.timezone, "recurrence": broadcast.recurrence}
    return {
        "id": broadcast.id, "object": "broadcast", "name": broadcast.name, "status": broadcast.status,
        "phone_number_id": number.phone_number_id if number else None,
        "template": {"name": broadcast.template_name, "language": broadcast.template_language,
                     "category": broadcast.template_category},
        "variables": broadcast.variables, "audience": broadcast.audience, "schedule": schedule,
        "messages_per_second": broadcast.messages_per_second,
        "retry_per_user_limit": broadcast.retry_per_user_limit,
        "check": broadcast.check_result, "checked_at": iso(broadcast.checked_at),
        "check_progress": _check_progress(broadcast),
        "recipients_total": broadcast.recipients_total,
        "counts": counts if counts is not None else services.counts(current_tenant(), [broadcast.id])[broadcast.id],
        "series_id": broadcast.series_id,
        "created_at": iso(broadcast.created_at), "started_at": iso(broadcast.started_at),
        "finished_at": iso(broadcast.finished_at),
    }


def _check_progress(broadcast) -> dict | None:
    """While the check runs as a job: how many contacts it has read of about how many; after one that
    failed: why. None otherwise."""
    progress = broadcast.check_progress
    if not progress:
        return None
    if broadcast.status != CHECKING:
        return {"checked": 0, "audience": 0, "error": progress.get("error")}
    return {"checked": progress.get("checked", 0), "audience": progress.get("audience", 0), "error": None}


def _answer(broadcast, status: int):
    """The broadcast, or 202 with its link while its check runs as a job (read it there when ready)."""
    response = jsonify(broadcast_json(broadcast))
    response.status_code = 202 if broadcast.status == CHECKING else status
    if response.status_code != 200:
        response.headers["Location"] = url_for("api.get_broadcast", broadcast_id=broadcast.id)
    return response


def _inline_max() -> int:
    return current_app.config["BROADCAST_CHECK_INLINE_MAX"]


def recipient_json(recipient) -> dict:
    return {"id": recipient.id, "object": "broadcast_recipient", "contact_id": recipient.contact_id,
            "wa_id": recipient.wa_id, "status": recipient.status, "skip_reason": recipient.skip_reason,
            "error": ({"code": recipient.error_code, "title": recipient.error_title}
                      if recipient.error_code is not None else None),
            "variables": recipient.variables, "attempts": recipient.attempts,
            "message_id": recipient.message_id, "wa_message_id": recipient.wa_message_id,
            "sent_at": iso(recipient.sent_at), "delivered_at": iso(recipient.delivered_at),
            "read_at": iso(recipient.read_at), "failed_at": iso(recipient.failed_at)}


def create_broadcast():
    services.require_feature(current_rights())
    body = json_object()
    broadcast = services.create(current_tenant(), current_rights(), body, actor="api", inline_max=_inline_max())
    return _answer(broadcast, 201)


def list_broadcasts():
    services.require_feature(current_rights())
    tenant = current_tenant()
    page = load(listing, request.args.to_dict())
    rows = services.list_for(tenant, limit=page["limit"] + 1, before=page.get("before"))
    has_more = len(rows) > page["limit"]
    rows = rows[: page["limit"]]
    counts = services.counts(tenant, [b.id for b in rows])
    body = {"data": [broadcast_json(b, counts[b.id]) for b in rows], "has_more": has_more}
    if has_more:
        body["next"] = url_for("api.list_broadcasts", limit=page["limit"], before=rows[-1].id)
    return jsonify(body)


def get_broadcast(broadcast_id):
    services.require_feature(current_rights())
    return jsonify(broadcast_json(services.get(current_tenant(), broadcast_id)))


def _step(verb: str):
    def view(broadcast_id):
        if verb == "recheck":
            return _answer(services.recheck(current_tenant(), current_rights(), broadcast_id,
                                            inline_max=_inline_max()), 200)
        step = getattr(services, verb)
        return jsonify(broadcast_json(step(current_tenant(), current_rights(), broadcast_id)))

    view.__name__ = f"{verb}_broadcast"
    return view


def list_recipients(broadcast_id):
    rights, tenant = current_rights(), current_tenant()
    services.require_feature(rights)
    query = load(recipient_query, request.args.to_dict())
    broadcast = services.get(tenant, broadcast_id)
    if query["format"] == "csv":
        rights.require(services.EXPORT_FEATURE, "exports of broadcast outcomes")
        lines = export.lines(tenant, broadcast.id, status=query.get("status"))
        response = Response(stream_with_context(lines), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="broadcast-{broadcast.id}-recipients.csv"'
        return response
    rows = services.recipients(tenant, broadcast.id, status=query.get("status"), after=query["after"],
                               limit=query["limit"] + 1)
    has_more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    body = {"data": [recipient_json(r) for r in rows], "has_more": has_more}
    if has_more:
        extra = {"status": query["status"]} if query.get("status") else {}
        body["next"] = url_for("api.list_recipients", broadcast_id=broadcast.id, limit=query["limit"],
                               after=rows[-1].id, **extra)
    return jsonify(body)


def register(bp) -> None:
    """The broadcast routes on the API blueprint ``bp``."""
    bp.add_url_rule("/broadcasts", view_func=create_broadcast, methods=["POST"])
    bp.add_url_rule("/broadcasts", view_func=list_broadcasts, methods=["GET"])
    bp.add_url_rule("/broadcasts/<broadcast_id>", view_func=get_broadcast, methods=["GET"])
    for verb in ("start", "pause", "resume", "cancel", "recheck"):
        bp.add_url_rule(f"/broadcasts/<broadcast_id>/{'check' if verb == 'recheck' else verb}",
                        view_func=_step(verb), methods=["POST"])
    bp.add_url_rule("/broadcasts/<broadcast_id>/recipients", view_func=list_recipients, methods=["GET"])
