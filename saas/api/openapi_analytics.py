"""The analytics operation of the OpenAPI document (saas.api.openapi): GET /api/v1/analytics/daily, as
saas.api.analytics answers it."""
from __future__ import annotations

from marshmallow import Schema, fields

from saas.analytics.ranges import MAX_DAYS
from saas.api.openapi_responses import READ_ERRORS, errors, ok


class CostAmount(Schema):
    currency = fields.String(required=True, metadata={"description": "The rate card's (ISO 4217)."})
    estimated_micros = fields.Integer(required=True, metadata={"description": "Millionths of the currency."})
    confirmed_micros = fields.Integer(required=True)
    cost_micros = fields.Integer(required=True, metadata={
        "description": "Meta's confirmed cost where a status carried its pricing, else the estimate."})


class AnalyticsFigures(Schema):
    sent = fields.Integer(required=True, metadata={"description": "Accepted by WhatsApp."})
    delivered = fields.Integer(required=True)
    read = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    conversations = fields.Integer(required=True, metadata={"description": "Conversations the sends opened."})
    confirmed = fields.Integer(required=True, metadata={"description": "Messages whose cost Meta confirmed."})
    cost = fields.List(fields.Nested(CostAmount), required=True)


class AnalyticsDay(AnalyticsFigures):
    date = fields.String(required=True, metadata={"format": "date", "description": "The UTC day of the sends."})
    phone_number_id = fields.String(required=True, allow_none=True)
    failures = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                           metadata={"description": "Failed messages per WhatsApp error code (0: none given)."})


class AnalyticsCost(AnalyticsFigures):
    category = fields.String(required=True)
    market = fields.String(required=True, metadata={"description": "Meta's market; empty: not priced."})


class AnalyticsUsage(Schema):
    metric = fields.String(required=True, metadata={"enum": ["conversations", "messages"]})
    period = fields.Dict(required=True)
    used = fields.Integer(required=True)
    included = fields.Integer(required=True)
    projected = fields.Integer(required=True, metadata={"description": "At the period's end, at the pace so far."})
    elapsed = fields.Float(required=True, metadata={"description": "The share of the period gone (0 to 1)."})


class AnalyticsDaily(Schema):
    object = fields.String(required=True, metadata={"enum": ["analytics.daily"]})
    _from = fields.String(required=True, data_key="from", metadata={"format": "date"})
    to = fields.String(required=True, metadata={"format": "date"})
    timezone = fields.String(required=True, metadata={"enum": ["UTC"]})
    phone_number_id = fields.String(required=True, allow_none=True)
    data = fields.List(fields.Nested(AnalyticsDay), required=True)
    totals = fields.Nested(AnalyticsFigures, required=True)
    failures = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    costs = fields.List(fields.Nested(AnalyticsCost), required=True)
    usage = fields.Nested(AnalyticsUsage, required=True)


def _day(name: str, description: str) -> dict:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}}


def paths(spec) -> None:
    """The analytics operation, and its schemas, onto ``spec``."""
    for name, schema in [("CostAmount", CostAmount), ("AnalyticsFigures", AnalyticsFigures),
                         ("AnalyticsDay", AnalyticsDay), ("AnalyticsCost", AnalyticsCost),
                         ("AnalyticsUsage", AnalyticsUsage), ("AnalyticsDaily", AnalyticsDaily)]:
        spec.components.schema(name, schema=schema)
    spec.path("/api/v1/analytics/daily", operations={"get": {
        "operationId": "getDailyAnalytics",
        "summary": f"Messages, failures, conversations and Meta's cost per day and number (UTC; at most {MAX_DAYS} "
                   "days)",
        "parameters": [
            _day("from", "The first day (default: 29 days before 'to')."),
            _day("to", "The last day, included (default: today)."),
            {"name": "number", "in": "query", "description": "One of the account's numbers (Meta's id).",
             "schema": {"type": "string", "maxLength": 64}}],
        "responses": {"200": ok("AnalyticsDaily"), **errors(READ_ERRORS)}}})
