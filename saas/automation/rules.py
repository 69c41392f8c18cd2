"""Rules: checking what a tenant writes, and keeping the tenant's rules (list, read, make, change, delete).

A rule is checked whole before it is stored (``checked``): a bounded name, a known trigger with its keyword,
pattern (saas.automation.matching.checked_pattern) or payload, conditions naming the tenant's own numbers,
and one to ten actions, each checked as what it will do: a reply as the Cloud API message it sends (an
approved template of the tenant, its variables all filled), a label as contacts store one, an agent among
the tenant's members who answer the inbox. Anything else is InvalidRequest with the field named. Every
function takes the tenant and touches its rules only (another tenant's is NotFound).
"""
from __future__ import annotations

import copy
import re

from sqlalchemy import func, select

from saas.automation import matching
from saas.automation.hours import HoursInvalid, clock_of
from saas.automation.models import (
    BUTTON, KEYWORD, MATCHES, REGEX, TRIGGERS, Rule,
)
from saas.contacts import values
from saas.errors import InvalidRequest
from saas.extensions import db
from saas.inbox.replies import variables_of
from saas.messaging.models import PhoneNumber, Template
from saas.messaging.outbound import payloads
from saas.messaging.templates.message_templates import SANDBOX_TEMPLATES
from saas.tenants import roles
from saas.tenants.models import User
from saas.tenants.scoping import get_owned
from saas.timeutil import utcnow

NAME_MAX = 100
RULES_MAX = 200
ACTIONS_MAX = 10
EVENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,39}$")
ACTION_TYPES = ("reply", "add_label", "remove_label", "assign", "opt_in", "opt_out", "forward")
REPLY_TYPES = ("text", "image", "video", "audio", "document", "interactive", "template")
# A placeholder a reply may hold, filled with the customer's profile name or number when it is sent.
PLACEHOLDERS = ("{name}", "{wa_id}")
SAMPLE_TO = "15550000000"
PRIORITY_MAX = 1_000_000


def _bad(field: str, reason: str):
    return InvalidRequest("Some fields are missing or invalid.", details={field: [reason]})


def _text(value, field: str, limit: int, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise _bad(field, "Missing data for required field.")
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise _bad(field, f"Text of at most {limit} characters, without NUL.")
    return value


def _flag(value, field: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(field, "true or false.")
    return value


def _ids(value, field: str) -> list[int]:
    if not isinstance(value, list) or len(value) > 100 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31 for v in value):
        raise _bad(field, "A list of at most 100 ids.")
    return sorted(set(value))


def _conditions(tenant, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - {"numbers", "labels", "weekdays", "from", "to"}:
        raise _bad("conditions", "An object with numbers, labels, weekdays, from and to.")
    kept = {}
    if value.get("numbers"):
        numbers = _ids(value["numbers"], "conditions.numbers")
        owned = set(db.session.scalars(select(PhoneNumber.id).where(PhoneNumber.tenant_id == tenant.id,
                                                                    PhoneNumber.id.in_(numbers))))
        if owned != set(numbers):
            raise _bad("conditions.numbers", "Each id is one of your numbers.")
        kept["numbers"] = numbers
    if value.get("labels"):
        kept["labels"] = values.labels(value["labels"], "conditions.labels")[:10]
    if value.get("weekdays"):
        days = value["weekdays"]
        if not isinstance(days, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6
                                                 for d in days):
            raise _bad("conditions.weekdays", "A list of weekdays, 0 (Monday) to 6 (Sunday).")
        kept["weekdays"] = sorted(set(days))
    if value.get("from") or value.get("to"):
        try:
            kept["from"], kept["to"] = clock_of(value.get("from"), "conditions.from"), clock_of(
                value.get("to"), "conditions.to")
        except HoursInvalid as exc:
            raise _bad(exc.field, str(exc)) from None
    return kept


def _template_checked(tenant, message: dict) -> None:
    template = message.get("template") or {}
    name, language = template.get("name"), (template.get("language") or {}).get("code")
    found = db.session.scalar(select(Template).where(
        Template.tenant_id == tenant.id, Template.name == name, Template.language == language,
        Template.status == "APPROVED").limit(1))
    if found is None:
        sandbox = SANDBOX_TEMPLATES.get((name, language))
        if sandbox is not None and sandbox.status == "APPROVED":
            return
        raise _bad("actions.message.template", "Not an approved template of yours (name and language).")
    given = sum(len(c.get("parameters") or []) for c in template.get("components") or []
                if isinstance(c, dict) and str(c.get("type")).lower() == "body")
    if given != variables_of(found):
        raise _bad("actions.message.template", f"This template has {variables_of(found)} body variables; fill each.")


def _reply(tenant, message) -> dict:
    if not isinstance(message, dict) or message.get("type") not in REPLY_TYPES:
        raise _bad("actions.message", f"A Cloud API message whose type is one of {', '.join(REPLY_TYPES)}.")
    kind = message["type"]
    body = {"type": kind, kind: copy.deepcopy(message.get(kind))}
    sample = {"messaging_product": "whatsapp", "to": SAMPLE_TO, **filled(body, "Customer", SAMPLE_TO)}
    try:
        payloads.outbound_item(sample)
    except InvalidRequest as exc:
        raise InvalidRequest("The reply is not a message WhatsApp takes.",
                             details={"actions.message": [exc.message], **(exc.details or {})}) from None
    if kind == "template":
        _template_checked(tenant, body)
    return body


def _assignee(tenant, value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise _bad("actions.user_id", "A member id, or null for round robin.")
    user = db.session.scalar(select(User).where(User.id == value, User.tenant_id == tenant.id))
    if user is None or not roles.may(user.role, "inbox"):
        raise _bad("actions.user_id", "Not a member of yours who answers the inbox.")
    return value


def _action(tenant, value) -> dict:
    if not isinstance(value, dict) or value.get("type") not in ACTION_TYPES:
        raise _bad("actions", f"Each action's type is one of {', '.join(ACTION_TYPES)}.")
    kind = value["type"]
    if kind == "reply":
        return {"type": kind, "message": _reply(tenant, value.get("message"))}
    if kind in ("add_label", "remove_label"):
        return {"type": kind, "label": values.label(value.get("label"), "actions.label")}
    if kind == "assign":
        return {"type": kind, "user_id": _assignee(tenant, value.get("user_id"))}
    if kind == "forward":
        event = value.get("event")
        if not isinstance(event, str) or not EVENT_NAME.match(event):
            raise _bad("actions.event", "1 to 40 lowercase letters, digits, dots, dashes or underscores.")
        return {"type": kind, "event": event}
    return {"type": kind}


def checked(tenant, body, *, partial_of: Rule | None = None) -> dict:
    """The rule's fields as stored, from the request ``body`` (over ``partial_of``'s for a change)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    given = dict(body)
    if partial_of is not None:
        current = {name: getattr(partial_of, name) for name in ("name", "enabled", "priority", "stop_after_match",
                                                                 "trigger", "match", "pattern", "conditions",
                                                                 "actions")}
        given = {**current, **{k: v for k, v in given.items() if k in current}}
    rule = {"name": _text(given.get("name"), "name", NAME_MAX).strip() or None}
    if rule["name"] is None:
        raise _bad("name", "Missing data for required field.")
    rule["enabled"] = _flag(given.get("enabled"), "enabled", False)
    rule["stop_after_match"] = _flag(given.get("stop_after_match"), "stop_after_match", True)
    priority = given.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= PRIORITY_MAX:
        raise _bad("priority", f"A whole number from 0 to {PRIORITY_MAX}; lower runs first.")
    rule["priority"] = priority
    trigger = given.get("trigger")
    if trigger not in TRIGGERS:
        raise _bad("trigger", f"One of {', '.join(TRIGGERS)}.")
    rule.update(trigger=trigger, match=None, pattern=None)
    if trigger == KEYWORD:
        if given.get("match") not in MATCHES:
            raise _bad("match", f"One of {', '.join(MATCHES)}.")
        rule["match"] = given["match"]
        rule["pattern"] = _text(given.get("pattern"), "pattern", matching.PATTERN_MAX)
        if rule["match"] == REGEX:
            try:
                matching.checked_pattern(rule["pattern"])
            except matching.PatternInvalid as exc:
                raise _bad("pattern", str(exc)) from None
    elif trigger == BUTTON:
        rule["pattern"] = _text(given.get("pattern"), "pattern", matching.PATTERN_MAX)
    rule["conditions"] = _conditions(tenant, given.get("conditions"))
    actions = given.get("actions")
    if not isinstance(actions, list) or not 1 <= len(actions) <= ACTIONS_MAX:
        raise _bad("actions", f"A list of 1 to {ACTIONS_MAX} actions.")
    rule["actions"] = [_action(tenant, action) for action in actions]
    if sum(1 for a in rule["actions"] if a["type"] == "reply") > 1:
        raise _bad("actions", "At most one reply per rule.")
    return rule


def filled(body, name: str | None, wa_id: str):
    """``body`` with the placeholders of its texts filled: {name} the customer's profile name, {wa_id} their
    number."""
    if isinstance(body, dict):
        return {k: filled(v, name, wa_id) for k, v in body.items()}
    if isinstance(body, list):
        return [filled(v, name, wa_id) for v in body]
    if isinstance(body, str):
        return body.replace("{name}", name or "there").replace("{wa_id}", wa_id)
    return body


def rules_of(tenant) -> list[Rule]:
    """The tenant's rules in the order they run."""
    return list(db.session.scalars(select(Rule).where(Rule.tenant_id == tenant.id)
                                   .order_by(Rule.priority, Rule.id)))


def get_rule(tenant, rule_id) -> Rule:
    return get_owned(Rule, rule_id, tenant, what="rule")


def create_rule(tenant, body) -> Rule:
    """A new rule of the tenant from ``body``. Commits. InvalidRequest when a field is wrong or the tenant has
    RULES_MAX rules."""
    fields = checked(tenant, body)
    if db.session.scalar(select(func.count(Rule.id)).where(Rule.tenant_id == tenant.id)) >= RULES_MAX:
        raise _bad("rules", f"At most {RULES_MAX} rules.")
    now = utcnow()
    rule = Rule(tenant_id=tenant.id, created_at=now, updated_at=now, **fields)
    db.session.add(rule)
    db.session.commit()
    return rule


def update_rule(tenant, rule_id, body) -> Rule:
    """Change the fields ``body`` names (the others stay). Commits."""
    rule = get_rule(tenant, rule_id)
    for name, value in checked(tenant, body, partial_of=rule).items():
        setattr(rule, name, value)
    rule.updated_at = utcnow()
    db.session.commit()
    return rule


def delete_rule(tenant, rule_id) -> None:
    db.session.delete(get_rule(tenant, rule_id))
    db.session.commit()
