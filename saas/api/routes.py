"""/api/v1: the tenant's REST API (messages, numbers, usage; contacts, broadcasts and threads in modules of their own)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from saas.api import broadcasts, consent, contacts, schemas
from saas.api.requests import (
    authenticate, current_rights, current_tenant, idempotency_key, json_object, load, rate_limit_headers,
)
from saas.api.serializers import message_json, number_json
from saas.errors import InvalidRequest
from saas.messaging import services as messaging
from saas.messaging.outbound import payloads, send_service
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.metering.services import usage_summary

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)
bp.after_request(rate_limit_headers)
# Areas with views of their own, nested: authenticated, rate-limited and enveloped as every API call.
NESTED = (consent.bp,)
for nested in NESTED:
    bp.register_blueprint(nested)
broadcasts.register(bp)

send_body = schemas.V1Send()
pagination = schemas.Pagination()


@bp.post("/messages")
def send_message():
    tenant = current_tenant()
    body = json_object()
    message = payloads.outbound(body, send_body)
    data = message.payload
    phone_number_id = data.pop("phone_number_id", None)
    if phone_number_id is None:
        numbers = numbers_for(tenant)
        if len(numbers) != 1:
            raise InvalidRequest("This account has several numbers; say which sends with 'phone_number_id'.",
                                 details={"phone_number_id": ["Missing data for required field."]})
        phone_number_id = numbers[0].phone_number_id
    outcome = send_service(current_app).send(
        tenant, current_rights(), phone_number_id, data, idempotency_key=idempotency_key(),
        upstream=message.upstream)
    response = jsonify(message_json(messaging.get_message(tenant, outcome.message_id)))
    response.status_code = 200 if outcome.replayed else 201
    response.headers["Location"] = url_for("api.get_message", message_id=outcome.message_id)
    return response


@bp.get("/messages")
def list_messages():
    tenant = current_tenant()
    page = load(pagination, request.args.to_dict())
    rows = messaging.list_messages(tenant, limit=page["limit"] + 1, before_id=page.get("before"))
    has_more = len(rows) > page["limit"]
    rows = rows[: page["limit"]]
    body = {"data": [message_json(m) for m in rows], "has_more": has_more}
    if has_more:
        body["next"] = url_for("api.list_messages", limit=page["limit"], before=rows[-1].id)
    return jsonify(body)


@bp.get("/messages/<message_id>")
def get_message(message_id):
    tenant = current_tenant()
    return jsonify(message_json(messaging.get_message(tenant, message_id)))


@bp.get("/numbers")
def list_numbers():
    tenant = current_tenant()
    return jsonify({"data": [number_json(n) for n in numbers_for(tenant)]})


@bp.get("/usage")
def usage():
    tenant = current_tenant()
    rights = current_rights()
    return jsonify(usage_summary(tenant, rights.subscription, rights).as_dict())


def _register_rooms() -> None:
    from saas.api import analytics, automation, exports, inbox, orders

    analytics.register(bp)
    inbox.register(bp)
    automation.register(bp)
    orders.register(bp)
    exports.register(bp)


_register_rooms()
contacts.register(bp)
