"""The order operations of the OpenAPI document (saas.api.openapi): /api/v1/orders, the templates order
events send (/api/v1/order-notifications) and the shops' webhook URLs (/api/v1/shop-connections), as
saas.api.orders answers them."""
from __future__ import annotations

from marshmallow import Schema, fields

from saas.ids import MAX_ID
from saas.orders.fields import EventBody, Item
from saas.orders.mapping import FIELDS
from saas.orders.models import NOTIFICATION_STATUSES, PLATFORMS, SOURCES
from saas.orders.states import APPLIED, DUPLICATE, EVENTS, NOT_ALLOWED, STALE, STATES

ERRORS = {
    400: "The request is invalid; `details` says which field.",
    401: "Missing, malformed, unknown or revoked API key.",
    402: "The subscription needs a payment for this plan feature.",
    403: "The plan does not include order notifications, or the account is suspended; see `upgrade_url`.",
    404: "No such order (or event, template mapping, shop platform) for this account.",
    405: "Method not allowed.",
    413: "The body is larger than MAX_REQUEST_BYTES.",
    429: "Too many requests; see Retry-After.",
}
READ = (400, 401, 402, 403, 404, 405, 413, 429)
NULLABLE = {"required": True, "allow_none": True}


class OrderItem(Schema):
    name = fields.String(required=True)
    quantity = fields.Integer(required=True)
    price = fields.String(**NULLABLE)
    sku = fields.String(**NULLABLE)


class TimelineError(Schema):
    code = fields.String(**NULLABLE)
    title = fields.String(**NULLABLE)


class TimelineEntry(Schema):
    kind = fields.String(required=True, metadata={"enum": ["event", "message"]})
    event = fields.String(required=True, metadata={"enum": list(STATES)})
    at = fields.String(required=True)
    source = fields.String(metadata={"enum": list(SOURCES)})
    data = fields.Dict()
    status = fields.String(metadata={"enum": list(NOTIFICATION_STATUSES), "description": "The notification's."})
    message_status = fields.String(allow_none=True, metadata={
        "description": "Its message's delivery: accepted, sent, delivered, read, failed (null: none sent)."})
    message_id = fields.Integer(allow_none=True)
    wa_message_id = fields.String(allow_none=True)
    template = fields.String()
    language = fields.String()
    error = fields.Nested(TimelineError, allow_none=True)


class Order(Schema):
    id = fields.Integer(required=True)
    object = fields.String(required=True, metadata={"enum": ["order"]})
    reference = fields.String(required=True)
    name = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": list(SOURCES)})
    state = fields.String(required=True, metadata={"enum": list(STATES)})
    state_at = fields.String(required=True)
    wa_id = fields.String(**NULLABLE)
    contact_id = fields.Integer(**NULLABLE)
    customer_name = fields.String(**NULLABLE)
    items = fields.List(fields.Nested(OrderItem), required=True)
    total = fields.String(**NULLABLE)
    currency = fields.String(**NULLABLE)
    tracking_number = fields.String(**NULLABLE)
    tracking_url = fields.String(**NULLABLE)
    carrier = fields.String(**NULLABLE)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class OrderDetail(Order):
    timeline = fields.List(fields.Nested(TimelineEntry), required=True)


class OrderList(Schema):
    data = fields.List(fields.Nested(Order), required=True)
    has_more = fields.Boolean(required=True)
    next = fields.String()


class OrderEventResult(Schema):
    object = fields.String(required=True, metadata={"enum": ["order_event"]})
    event = fields.String(required=True, metadata={"enum": list(EVENTS)})
    applied = fields.Boolean(required=True)
    outcome = fields.String(required=True, metadata={"enum": [APPLIED, DUPLICATE, STALE, NOT_ALLOWED]})
    message = fields.String(required=True)
    order = fields.Nested(Order, required=True)
    notification = fields.Nested(TimelineEntry, **NULLABLE)


class NotificationTemplate(Schema):
    name = fields.String(required=True, metadata={"maxLength": 512})
    language = fields.String(metadata={"maxLength": 15, "default": "en_US"})


class MappedTemplate(Schema):
    name = fields.String(required=True)
    language = fields.String(required=True)
    category = fields.String(required=True)


class Binding(Schema):
    field = fields.String(metadata={"enum": list(FIELDS)})
    value = fields.String(metadata={"maxLength": 1024})
    default = fields.String(metadata={"maxLength": 1024})


class NotificationMappingBody(Schema):
    phone_number_id = fields.String(metadata={"maxLength": 64, "description": "Default: the account's first number."})
    template = fields.Nested(NotificationTemplate, required=True)
    variables = fields.Dict(keys=fields.String(), values=fields.Nested(Binding), metadata={
        "description": "Each template variable (\"body.1\", \"header.1\", ...) bound to an order field or a text."})


class NotificationPreviewBody(NotificationMappingBody):
    template = fields.Nested(NotificationTemplate, metadata={"description": "Without it: the event's mapping."})
    order = fields.String(metadata={"maxLength": 100, "description": "An order's reference (default: a sample)."})


class NotificationMapping(Schema):
    object = fields.String(required=True, metadata={"enum": ["order_notification"]})
    event = fields.String(required=True, metadata={"enum": list(EVENTS)})
    phone_number_id = fields.String(**NULLABLE)
    template = fields.Nested(MappedTemplate, required=True)
    variables = fields.Dict(required=True)
    recategorised = fields.Boolean(required=True, metadata={
        "description": "Meta made the template marketing since it was mapped: it costs more and needs opt-ins."})
    category_now = fields.String(required=True)
    updated_at = fields.String(required=True)


class NotificationMappingList(Schema):
    data = fields.List(fields.Nested(NotificationMapping), required=True)


class NotificationPreview(Schema):
    event = fields.String(required=True)
    template = fields.Nested(MappedTemplate, required=True)
    phone_number_id = fields.String(required=True)
    variables = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    missing = fields.List(fields.String(), required=True)
    text = fields.String(**NULLABLE)
    body = fields.Dict(required=True)


class ShopConnectionBody(Schema):
    secret = fields.String(metadata={"minLength": 16, "maxLength": 200, "description":
                                     "The shop's signing secret (Shopify's); without it one is made."})


class ShopConnection(Schema):
    object = fields.String(required=True, metadata={"enum": ["shop_connection"]})
    platform = fields.String(required=True, metadata={"enum": list(PLATFORMS)})
    url = fields.String(required=True)
    secret = fields.String(metadata={"description": "Only in the answer that set it."})
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    last_received_at = fields.String(**NULLABLE)


class ShopConnectionList(Schema):
    data = fields.List(fields.Nested(ShopConnection), required=True)


def _errors(codes):
    return {str(code): {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
            for code in codes}


def _ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path(name: str, **schema) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}


REFERENCE = _path("reference", maxLength=100)
EVENT = _path("event", maxLength=20)
PLATFORM = _path("platform", maxLength=20)


def _body(schema: str, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def paths(spec) -> None:
    """The order operations, and their schemas, onto ``spec``."""
    for name, schema in [("OrderItem", OrderItem), ("TimelineError", TimelineError), ("TimelineEntry", TimelineEntry),
                         ("Order", Order), ("OrderDetail", OrderDetail), ("OrderList", OrderList),
                         ("OrderEventItem", Item), ("OrderEventBody", EventBody),
                         ("OrderEventResult", OrderEventResult), ("NotificationTemplate", NotificationTemplate),
                         ("MappedTemplate", MappedTemplate), ("Binding", Binding),
                         ("NotificationMappingBody", NotificationMappingBody),
                         ("NotificationPreviewBody", NotificationPreviewBody),
                         ("NotificationMapping", NotificationMapping),
                         ("NotificationMappingList", NotificationMappingList),
                         ("NotificationPreview", NotificationPreview), ("ShopConnectionBody", ShopConnectionBody),
                         ("ShopConnection", ShopConnection), ("ShopConnectionList", ShopConnectionList)]:
        spec.components.schema(name, schema=schema)
    spec.path("/api/v1/orders", operations={"get": {
        "operationId": "listOrders", "summary": "The account's orders, newest first",
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}},
            {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
            {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(STATES)}}],
        "responses": {"200": _ok("OrderList"), **_errors(READ)}}})
    spec.path("/api/v1/orders/{reference}", operations={"get": {
        "operationId": "getOrder", "summary": "An order with its timeline: every state and message",
        "parameters": [REFERENCE], "responses": {"200": _ok("OrderDetail"), **_errors(READ)}}})
    spec.path("/api/v1/orders/{reference}/events", operations={"post": {
        "operationId": "postOrderEvent", "summary": "An order event: applied once (201), or changing nothing (200)",
        "parameters": [REFERENCE], "requestBody": _body("OrderEventBody"),
        "responses": {"201": _ok("OrderEventResult", "Applied; its notification sent"),
                      "200": _ok("OrderEventResult", "Repeated, older or not allowed: nothing changed or sent"),
                      **_errors(READ)}}})
    spec.path("/api/v1/order-notifications", operations={"get": {
        "operationId": "listOrderNotifications", "summary": "The template each order event sends",
        "responses": {"200": _ok("NotificationMappingList"), **_errors(READ)}}})
    spec.path("/api/v1/order-notifications/{event}", operations={
        "get": {"operationId": "getOrderNotification", "summary": "The template an event sends",
                "parameters": [EVENT], "responses": {"200": _ok("NotificationMapping"), **_errors(READ)}},
        "put": {"operationId": "putOrderNotification", "summary": "Map an approved utility template to an event",
                "parameters": [EVENT], "requestBody": _body("NotificationMappingBody"),
                "responses": {"200": _ok("NotificationMapping"), **_errors(READ)}},
        "delete": {"operationId": "deleteOrderNotification", "summary": "Unmap an event (it sends nothing)",
                   "parameters": [EVENT], "responses": {"204": {"description": "Unmapped"}, **_errors(READ)}}})
    spec.path("/api/v1/order-notifications/{event}/preview", operations={"post": {
        "operationId": "previewOrderNotification", "summary": "What an event would send for an order",
        "parameters": [EVENT], "requestBody": _body("NotificationPreviewBody"),
        "responses": {"200": _ok("NotificationPreview"), **_errors(READ)}}})
    spec.path("/api/v1/shop-connections", operations={"get": {
        "operationId": "listShopConnections", "summary": "The shops' webhook URLs",
        "responses": {"200": _ok("ShopConnectionList"), **_errors(READ)}}})
    spec.path("/api/v1/shop-connections/{platform}", operations={"put": {
        "operationId": "putShopConnection", "summary": "A shop's webhook URL with a new secret",
        "parameters": [PLATFORM], "requestBody": _body("ShopConnectionBody", required=False),
        "responses": {"200": _ok("ShopConnection"), **_errors(READ)}}})
