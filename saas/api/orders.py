"""/api/v1/orders (list, read with its timeline, events in), /api/v1/order-notifications (the template
each event sends: list, read, put, delete, preview) and /api/v1/shop-connections (each shop's webhook URL
and secret). Plan feature ``order_notifications`` (403 ``feature_not_in_plan`` without it); another tenant's
order is 404 ``not_found``. Registered on the API blueprint by saas.api.routes."""
from __future__ import annotations

from flask import current_app, jsonify, request, url_for
from marshmallow import fields, validate

from saas.api.requests import current_rights, current_tenant, json_object, load
from saas.api.schemas import Lenient
from saas.errors import NotFound
from saas.extensions import db
from saas.ids import MAX_ID
from saas.messaging.models import PhoneNumber
from saas.messaging.outbound import send_service
from saas.orders import mapping, reading, services, shops
from saas.orders.fields import EventBody, from_body, reference_problem
from saas.orders.models import PLATFORMS
from saas.orders.states import EVENTS, STATES
from saas.timeutil import iso


class Listing(Lenient):
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    before = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    state = fields.String(validate=validate.OneOf(STATES))


listing, event_body = Listing(), EventBody()


def _rights():
    rights = current_rights()
    rights.require(services.FEATURE, "order notifications")
    return rights


def _reference(reference: str) -> str:
    if reference_problem(reference):
        raise NotFound("No such order.")
    return reference


def order_json(order, timeline: list | None = None) -> dict:
    body = {"id": order.id, "object": "order", "reference": order.reference, "name": order.name,
            "source": order.source, "state": order.state, "state_at": iso(order.state_at), "wa_id": order.wa_id,
            "contact_id": order.contact_id, "customer_name": order.customer_name, "items": order.items or [],
            "total": order.total, "currency": order.currency, "tracking_number": order.tracking_number,
            "tracking_url": order.tracking_url, "carrier": order.carrier, "created_at": iso(order.created_at),
            "updated_at": iso(order.updated_at)}
    if timeline is not None:
        body["timeline"] = reading.timeline_json(timeline)
    return body


def list_orders():
    _rights()
    args = load(listing, {k: v for k, v in request.args.to_dict().items() if v != ""})
    rows = reading.list_orders(db.session, current_tenant(), limit=args["limit"] + 1, before=args.get("before"),
                               state=args.get("state"))
    more = len(rows) > args["limit"]
    rows = rows[:args["limit"]]
    body = {"data": [order_json(o) for o in rows], "has_more": more}
    if more:
        body["next"] = url_for("api.list_orders", limit=args["limit"], before=rows[-1].id,
                               **({"state": args["state"]} if "state" in args else {}))
    return jsonify(body)


def get_order(reference):
    _rights()
    tenant = current_tenant()
    order = services.order_by_reference(db.session, tenant, _reference(reference))
    return jsonify(order_json(order, reading.timeline(db.session, tenant, order)))


def post_event(reference):
    rights = _rights()
    tenant = current_tenant()
    reference = _reference(reference)
    event, when, data = from_body(load(event_body, json_object()))
    applied = services.record_event(db.session, send_service(current_app), tenant, reference, event, data,
                                     source="api", when=when, rights=rights)
    order = services.order_by_reference(db.session, tenant, reference)
    notification = next((e for e in reading.timeline(db.session, tenant, order)
                         if e["kind"] == "message" and e["event"] == event), None) if applied.applied else None
    body = {"object": "order_event", "event": event, "applied": applied.applied, "outcome": applied.outcome,
            "message": applied.why, "order": order_json(order),
            "notification": reading.timeline_json([notification])[0] if notification else None}
    return jsonify(body), 201 if applied.applied else 200


def _event(event: str) -> str:
    if event not in EVENTS:
        raise NotFound("No such order event.")
    return event


def mapping_json(row) -> dict:
    number = db.session.get(PhoneNumber, row.phone_number_id)
    flag = mapping.flagged(db.session, row)
    return {"object": "order_notification", "event": row.event,
            "phone_number_id": number.phone_number_id if number else None,
            "template": {"name": row.template_name, "language": row.template_language,
                         "category": row.category.lower()},
            "variables": row.variables or {}, "recategorised": flag is not None,
            "category_now": (flag or row.category).lower(), "updated_at": iso(row.updated_at)}


def list_mappings():
    _rights()
    return jsonify({"data": [mapping_json(row) for row in mapping.mappings_for(db.session, current_tenant())]})


def get_mapping(event):
    _rights()
    return jsonify(mapping_json(mapping.get(db.session, current_tenant(), _event(event))))


def put_mapping(event):
    _rights()
    return jsonify(mapping_json(mapping.put(db.session, current_tenant(), _event(event), json_object())))


def delete_mapping(event):
    _rights()
    mapping.delete(db.session, current_tenant(), _event(event))
    return "", 204


def preview_mapping(event):
    _rights()
    tenant = current_tenant()
    body = json_object()
    order = None
    if "order" in body:
        if not isinstance(body["order"], str) or reference_problem(body["order"]):
            raise NotFound("No such order.")
        order = services.order_by_reference(db.session, tenant, body.pop("order"))
    return jsonify(mapping.preview(db.session, tenant, _event(event), body if "template" in body else None, order))


def connection_json(row, secret: str | None = None) -> dict:
    body = {"object": "shop_connection", "platform": row.platform,
            "url": url_for("shop_webhooks.receive", token=row.token, _external=True),
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
            "last_received_at": iso(row.last_received_at)}
    if secret is not None:
        body["secret"] = secret
    return body


def list_connections():
    _rights()
    return jsonify({"data": [connection_json(row) for row in shops.connections_for(db.session, current_tenant())]})


def put_connection(platform):
    _rights()
    if platform not in PLATFORMS:
        raise NotFound("No such shop platform.")
    body = json_object() if request.get_data(cache=True) else {}
    row, secret = shops.connect(db.session, current_tenant(), platform, body.get("secret"))
    return jsonify(connection_json(row, secret))


def register(bp) -> None:
    bp.add_url_rule("/orders", "list_orders", list_orders, methods=["GET"])
    bp.add_url_rule("/orders/<reference>", "get_order", get_order, methods=["GET"])
    bp.add_url_rule("/orders/<reference>/events", "post_order_event", post_event, methods=["POST"])
    bp.add_url_rule("/order-notifications", "list_order_notifications", list_mappings, methods=["GET"])
    bp.add_url_rule("/order-notifications/<event>", "get_order_notification", get_mapping, methods=["GET"])
    bp.add_url_rule("/order-notifications/<event>", "put_order_notification", put_mapping, methods=["PUT"])
    bp.add_url_rule("/order-notifications/<event>", "delete_order_notification", delete_mapping,
                    methods=["DELETE"])
    bp.add_url_rule("/order-notifications/<event>/preview", "preview_order_notification", preview_mapping,
                    methods=["POST"])
    bp.add_url_rule("/shop-connections", "list_shop_connections", list_connections, methods=["GET"])
    bp.add_url_rule("/shop-connections/<platform>", "put_shop_connection", put_connection, methods=["PUT"])
