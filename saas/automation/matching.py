"""Whether a rule matches an inbound message: its trigger, then its conditions.

The same code decides for live messages (saas.automation.engine) and for replay (saas.automation.replay),
so a replay says what enabling the rule would do. Regular expressions are checked before they are saved
(``checked_pattern``) so none can backtrack catastrophically: no variable repeat or alternatives inside a
repeat, no backreferences, at most three repeats of which two wider than ``?``; they are matched against
the first TEXT_SCANNED characters of a message, which keeps the worst case near a tenth of a second.
"""
from __future__ import annotations

import re
import re._parser as sre_parse  # the standard library's own parser of patterns
from dataclasses import dataclass, field
from datetime import datetime

from saas.automation.hours import Hours, in_window, local_time
from saas.automation.models import BUTTON, CONTAINS, EXACT, FIRST_MESSAGE, KEYWORD, OUTSIDE_HOURS, REGEX

PATTERN_MAX = 200
TEXT_SCANNED = 300
REPEATS_MAX = 3
# Wide repeats: more than two choices of length (*, +, {0,9}; not ? or {2}).
WIDE_MAX = 2


class PatternInvalid(ValueError):
    pass


@dataclass(frozen=True)
class Inbound:
    """An inbound message as rules read it."""

    tenant_id: int
    number_pk: int
    wa_id: str
    wa_message_id: str
    kind: str
    text: str            # a text's body, a button's or list reply's title, a caption
    payload: str | None  # a button's payload, an interactive reply's id
    at: datetime         # WhatsApp's time of the message (naive UTC)
    name: str | None = None


@dataclass(frozen=True)
class Context:
    """What matching needs beyond the message: whether it is the contact's first, the contact's labels, the
    number's business hours and the tenant's time zone."""

    first: bool
    labels: frozenset = field(default_factory=frozenset)
    hours: Hours | None = None
    zone: object = None


def _walk(parsed, inside: bool, counts: dict) -> None:
    """Count the pattern's repeats; refuse what backtracks exponentially. ``inside``: within a repeat that
    may run more than once, where a choice (a variable repeat, alternatives) multiplies the paths."""
    for op, arg in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, inner = arg
            if low != high:
                if inside:
                    raise PatternInvalid("A repeat inside a repeat can take forever to match.")
                counts["repeats"] += 1
                if high - low >= 2:
                    counts["wide"] += 1
            _walk(inner, inside or high > 1, counts)
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise PatternInvalid("Backreferences are not allowed.")
        elif name == "SUBPATTERN":
            _walk(arg[-1], inside, counts)
        elif name == "BRANCH":
            if inside:
                raise PatternInvalid("Alternatives inside a repeat can take forever to match.")
            for branch in arg[1]:
                _walk(branch, inside, counts)
        elif name in ("ASSERT", "ASSERT_NOT", "ATOMIC_GROUP"):
            _walk(arg[-1] if isinstance(arg, tuple) else arg, inside, counts)


def checked_pattern(pattern: str) -> re.Pattern:
    """``pattern`` compiled (case-insensitive), or PatternInvalid saying why it is refused."""
    if not isinstance(pattern, str) or not 1 <= len(pattern) <= PATTERN_MAX or "\x00" in pattern:
        raise PatternInvalid(f"A pattern is 1 to {PATTERN_MAX} characters, without NUL.")
    try:
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as exc:
        raise PatternInvalid(f"Not a regular expression: {exc}.") from None
    counts = {"repeats": 0, "wide": 0}
    _walk(parsed, False, counts)
    if counts["repeats"] > REPEATS_MAX or counts["wide"] > WIDE_MAX:
        raise PatternInvalid(f"At most {REPEATS_MAX} repeats, {WIDE_MAX} of them wider than ? (+, *, {{m,n}}).")
    return re.compile(pattern, re.IGNORECASE)


_compiled: dict[str, re.Pattern] = {}


def _regex(pattern: str) -> re.Pattern | None:
    found = _compiled.get(pattern)
    if found is None:
        try:
            found = checked_pattern(pattern)
        except PatternInvalid:
            return None
        if len(_compiled) > 1000:
            _compiled.clear()
        _compiled[pattern] = found
    return found


def normalised(value: str) -> str:
    return " ".join(value.casefold().split())


def triggered(rule, message: Inbound, context: Context) -> bool:
    """Whether ``message`` sets off ``rule``'s trigger."""
    if rule.trigger == FIRST_MESSAGE:
        return context.first
    if rule.trigger == OUTSIDE_HOURS:
        return context.hours is not None and not context.hours.open_at(message.at)
    if rule.trigger == BUTTON:
        return message.payload is not None and message.payload == rule.pattern
    if rule.trigger != KEYWORD or not rule.pattern or not message.text:
        return False
    if rule.match == EXACT:
        return normalised(message.text) == normalised(rule.pattern)
    if rule.match == CONTAINS:
        return normalised(rule.pattern) in normalised(message.text)
    if rule.match == REGEX:
        compiled = _regex(rule.pattern)
        return compiled is not None and compiled.search(message.text[:TEXT_SCANNED]) is not None
    return False


def conditions_hold(conditions: dict, message: Inbound, context: Context) -> bool:
    """Whether the rule's conditions hold: which number, the contact's labels (all of them), the weekday and
    time of day of the message in the tenant's time zone."""
    conditions = conditions or {}
    if conditions.get("numbers") and message.number_pk not in conditions["numbers"]:
        return False
    if conditions.get("labels") and not set(conditions["labels"]) <= context.labels:
        return False
    if conditions.get("weekdays") or conditions.get("from"):
        local = local_time(message.at, context.zone)
        if conditions.get("weekdays") and local.weekday() not in conditions["weekdays"]:
            return False
        if conditions.get("from") and not in_window(local, conditions["from"], conditions["to"]):
            return False
    return True


def matches(rule, message: Inbound, context: Context) -> bool:
    return triggered(rule, message, context) and conditions_hold(rule.conditions, message, context)


def inbound_of(tenant_id: int, number_pk: int, sender: str, wa_message_id: str, obj: dict, at: datetime,
               name: str | None = None) -> Inbound:
    """A WhatsApp message object as rules read it."""
    kind = obj.get("type") if isinstance(obj.get("type"), str) else "unsupported"
    body = obj.get(kind) if isinstance(obj.get(kind), dict) else {}
    text, payload = "", None
    if kind == "text":
        text = body.get("body") if isinstance(body.get("body"), str) else ""
    elif kind == "button":
        text = body.get("text") if isinstance(body.get("text"), str) else ""
        payload = body.get("payload") if isinstance(body.get("payload"), str) else None
    elif kind == "interactive":
        reply = body.get(body.get("type")) if isinstance(body.get("type"), str) else None
        reply = reply if isinstance(reply, dict) else {}
        text = reply.get("title") if isinstance(reply.get("title"), str) else ""
        payload = reply.get("id") if isinstance(reply.get("id"), str) else None
    elif isinstance(body.get("caption"), str):
        text = body["caption"]
    return Inbound(tenant_id, number_pk, sender, wa_message_id, kind, text[:4096], payload, at, name)
