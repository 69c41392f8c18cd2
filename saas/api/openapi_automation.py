"""Automation's part of the OpenAPI document: /api/v1/automation and what it answers (saas.api.automation)."""
from __future__ import annotations

from marshmallow import Schema, fields

from saas.automation.models import MATCHES, TRIGGERS
from saas.automation.rules import ACTION_TYPES

ERRORS = {
    400: "The request is invalid; `details` says which field.",
    401: "Missing, malformed, unknown or revoked API key.",
    403: "The plan does not include automation, or the account is suspended.",
    404: "No such rule (or number) for this account.",
    405: "Method not allowed.",
    413: "The body is larger than MAX_REQUEST_BYTES.",
    429: "Too many requests; see Retry-After.",
}
CODES = (400, 401, 403, 404, 405, 413, 429)
ID = {"type": "string", "maxLength": 20}


class Conditions(Schema):
    numbers = fields.List(fields.Integer(), metadata={"maxItems": 100, "description": "Your numbers' ids."})
    labels = fields.List(fields.String(metadata={"maxLength": 50}), metadata={"maxItems": 50})
    weekdays = fields.List(fields.Integer(metadata={"minimum": 0, "maximum": 6}), metadata={
        "description": "0 is Monday; in your time zone."})
    from_ = fields.String(data_key="from", metadata={"pattern": "^[0-9]{2}:[0-9]{2}$"})
    to = fields.String(metadata={"pattern": "^[0-9]{2}:[0-9]{2}$"})


class Action(Schema):
    type = fields.String(required=True, metadata={"enum": list(ACTION_TYPES)})
    message = fields.Dict(metadata={"description": "reply: a Cloud API message (type and its object); texts may "
                                                   "hold {name} and {wa_id}."})
    label = fields.String(metadata={"maxLength": 50})
    user_id = fields.Integer(allow_none=True, metadata={"description": "assign: a member, or null: round robin."})
    event = fields.String(metadata={"maxLength": 40, "description": "forward: the event's name."})


class RuleInput(Schema):
    name = fields.String(metadata={"minLength": 1, "maxLength": 100})
    enabled = fields.Boolean(metadata={"default": False})
    priority = fields.Integer(metadata={"minimum": 0, "maximum": 1000000, "default": 100})
    stop_after_match = fields.Boolean(metadata={"default": True})
    trigger = fields.String(metadata={"enum": list(TRIGGERS)})
    match = fields.String(metadata={"enum": list(MATCHES)})
    pattern = fields.String(metadata={"maxLength": 200})
    conditions = fields.Nested(Conditions)
    actions = fields.List(fields.Nested(Action), metadata={"minItems": 1, "maxItems": 10})


class Rule(Schema):
    id = fields.Integer(required=True)
    object = fields.String(required=True, metadata={"enum": ["automation_rule"]})
    name = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    priority = fields.Integer(required=True)
    stop_after_match = fields.Boolean(required=True)
    trigger = fields.String(required=True, metadata={"enum": list(TRIGGERS)})
    match = fields.String(required=True, allow_none=True)
    pattern = fields.String(required=True, allow_none=True)
    conditions = fields.Dict(required=True)
    actions = fields.List(fields.Dict(), required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class RuleList(Schema):
    data = fields.List(fields.Nested(Rule), required=True)


class ReplayMatch(Schema):
    wa_message_id = fields.String(required=True)
    number_id = fields.Integer(required=True)
    at = fields.String(required=True)
    text = fields.String(required=True)
    actions = fields.List(fields.String(), required=True)
    reply = fields.Dict(required=True, allow_none=True)
    held = fields.String(required=True, allow_none=True)
    opens_conversation = fields.Boolean(required=True)
    category = fields.String()


class Replay(Schema):
    rule_id = fields.Integer(required=True)
    days = fields.Integer(required=True)
    scanned = fields.Integer(required=True)
    truncated = fields.Boolean(required=True)
    matched = fields.Integer(required=True)
    sends = fields.Integer(required=True)
    held = fields.Integer(required=True)
    conversations = fields.Integer(required=True)
    billable_units = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    billing_unit = fields.String(required=True)
    matches = fields.List(fields.Nested(ReplayMatch), required=True)


class AutomationSettings(Schema):
    timezone = fields.String(metadata={"maxLength": 64, "description": "An IANA time zone name."})
    replies_per_hour = fields.Integer(metadata={"minimum": 1, "maximum": 100})


class HoursInput(Schema):
    weekly = fields.Dict(keys=fields.String(), values=fields.List(fields.List(fields.String())), metadata={
        "description": "Weekday (0 Monday to 6 Sunday) to spans [open, close] as HH:MM."})
    holidays = fields.List(fields.String(metadata={"format": "date"}), metadata={"maxItems": 100})


class Hours(Schema):
    number_id = fields.Integer(required=True)
    weekly = fields.Dict(required=True)
    holidays = fields.List(fields.String(), required=True)
    set = fields.Boolean(required=True)


def _errors(codes):
    return {str(code): {"description": ERRORS[code], "content": {"application/json": {"schema": "Error"}}}
            for code in codes}


def _operation(operation_id: str, summary: str, *, response: str | None, body: str | None = None,
               parameters=(), status: str = "200") -> dict:
    operation = {"operationId": operation_id, "summary": summary, "parameters": list(parameters),
                 "responses": {status: ({"description": "OK", "content": {"application/json": {"schema": response}}}
                                        if response else {"description": "Done"}), **_errors(CODES)}}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def paths(spec) -> None:
    """The /api/v1/automation operations, and their schemas, onto ``spec``."""
    for name, schema in [("AutomationConditions", Conditions), ("AutomationAction", Action),
                         ("AutomationRuleInput", RuleInput), ("AutomationRule", Rule),
                         ("AutomationRuleList", RuleList), ("AutomationReplayMatch", ReplayMatch),
                         ("AutomationReplay", Replay), ("AutomationSettings", AutomationSettings),
                         ("BusinessHoursInput", HoursInput), ("BusinessHours", Hours)]:
        spec.components.schema(name, schema=schema)
    rule_id = [{"name": "rule_id", "in": "path", "required": True, "schema": ID}]
    number_id = [{"name": "number_id", "in": "path", "required": True, "schema": ID}]
    spec.path("/api/v1/automation/rules", operations={
        "get": _operation("listAutomationRules", "Your rules in the order they run", response="AutomationRuleList"),
        "post": _operation("createAutomationRule", "Make a rule", response="AutomationRule",
                           body="AutomationRuleInput", status="201")})
    spec.path("/api/v1/automation/rules/{rule_id}", operations={
        "get": _operation("getAutomationRule", "A rule", response="AutomationRule", parameters=rule_id),
        "patch": _operation("updateAutomationRule", "Change the fields given", response="AutomationRule",
                            body="AutomationRuleInput", parameters=rule_id),
        "delete": _operation("deleteAutomationRule", "Delete a rule", response=None, parameters=rule_id,
                             status="204")})
    spec.path("/api/v1/automation/rules/{rule_id}/replay", operations={"post": _operation(
        "replayAutomationRule", "What the rule would have matched, sent and cost over the last 30 days",
        response="AutomationReplay", parameters=rule_id)})
    spec.path("/api/v1/automation/settings", operations={
        "get": _operation("getAutomationSettings", "Time zone and hourly reply cap", response="AutomationSettings"),
        "patch": _operation("changeAutomationSettings", "Change the time zone or the hourly reply cap",
                            response="AutomationSettings", body="AutomationSettings")})
    spec.path("/api/v1/automation/hours/{number_id}", operations={
        "get": _operation("getBusinessHours", "A number's business hours", response="BusinessHours",
                          parameters=number_id),
        "put": _operation("setBusinessHours", "Replace a number's business hours and holidays",
                          response="BusinessHours", body="BusinessHoursInput", parameters=number_id),
        "delete": _operation("clearBusinessHours", "Remove a number's business hours", response=None,
                             parameters=number_id, status="204")})
