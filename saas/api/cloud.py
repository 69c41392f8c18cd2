"""The Cloud-API-compatible endpoints: POST /v{N}/{phone_number_id}/messages, and beside it
media, a number's info and its business profile (saas.api.cloud_media).

Same bodies and same answers as WhatsApp's Cloud API, so a tenant points an
existing WhatsApp client at our base URL and changes nothing else. Errors keep
Graph's shape (see saas.error_handlers.graph_envelope).
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from werkzeug.routing import BaseConverter

from saas.api import cloud_media, schemas
from saas.api.requests import (
    authenticate, current_rights, current_tenant, idempotency_key, json_object, load, rate_limit_headers,
)
from saas.messaging import services as messaging
from saas.messaging.outbound import payloads, send_service

bp = Blueprint("cloud", __name__)
bp.before_request(authenticate)
bp.after_request(rate_limit_headers)


class GraphVersion(BaseConverter):
    """A Graph API version in the path: v23.0, v21.0, v19 ..."""

    regex = r"v[0-9]{1,3}(?:\.[0-9]{1,3})?"


@bp.record_once
def register_converter(state):
    state.app.url_map.converters["graph_version"] = GraphVersion


mark_read_body = schemas.MarkRead()


@bp.post("/<graph_version:version>/<phone_number_id>/messages")
def send(version, phone_number_id):
    tenant = current_tenant()
    body = json_object()
    if body.get("status") == "read" and "to" not in body:
        data = load(mark_read_body, body)
        messaging.mark_read(tenant, phone_number_id, data["message_id"], graph=current_app.extensions["graph"],
                            typing_indicator=data.get("typing_indicator"))
        return jsonify({"success": True})
    message = payloads.outbound(body)
    # A live number forwards the body as validated: nulls dropped, a JSON-encoded object decoded.
    outcome = send_service(current_app).send(
        tenant, current_rights(), phone_number_id, message.payload, idempotency_key=idempotency_key(),
        to_input=message.to_input, upstream=message.upstream)
    return jsonify(outcome.response_body)


cloud_media.register(bp)
