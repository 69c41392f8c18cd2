"""The send body's marshmallow schema compiled to plain checks, for the bodies the send path sees most.

``MessageBody`` (saas.messaging.outbound.payloads) stays the one description of
a send body: the OpenAPI document is drawn from it, and every refusal's
message and per-field details are its. This module reads that schema once
(each field's type, whether it is required, its default, its Length, OneOf,
Equal and Range bounds, the nested schemas) and builds a loader that gives
the very result ``schema.load`` gives for a body that passes, in a fraction
of the time. Whatever it cannot decide the same way (a field of a kind or
with a check it does not know, a value not of the plain JSON type, any
failed check) it leaves to marshmallow: the loader then answers None and the
schema loads the body, so every refusal is marshmallow's own.
tests/messaging/outbound/test_compiled_bodies.py feeds both the same bodies.
"""
from __future__ import annotations

import math
from typing import Callable

from marshmallow import EXCLUDE, ValidationError, fields, missing, validate

UNDECIDED = object()  # a field's check could not decide as marshmallow would: marshmallow loads the body
# Schema hooks the compiled loader does as the schema does: Lenient's null dropping (graph_form has dropped
# every null before any check), and the envelope's own (``_envelope``). A schema with any other hook is not
# compiled: its bodies go to marshmallow.
KNOWN_HOOKS = {"null_is_absent", "type_object_present", "recipient", "normalise"}

Check = Callable[[object], object]


def _validator_check(validator) -> Callable[[object], bool] | None:
    if isinstance(validator, validate.Length) and validator.equal is None:
        low, high = validator.min, validator.max
        return lambda v: (low is None or len(v) >= low) and (high is None or len(v) <= high)
    if isinstance(validator, validate.OneOf):
        choices = validator.choices
        return lambda v: v in choices
    if isinstance(validator, validate.Equal):
        comparable = validator.comparable
        return lambda v: v == comparable
    if isinstance(validator, validate.Range):
        low, high, low_in, high_in = validator.min, validator.max, validator.min_inclusive, validator.max_inclusive
        return lambda v: ((low is None or (v >= low if low_in else v > low))
                          and (high is None or (v <= high if high_in else v < high)))
    return None


def _plain(field, convert: Check) -> Check | None:
    """A field's conversion, then its validators; None when one of them is not known here."""
    checks = [_validator_check(v) for v in field.validators]
    if any(c is None for c in checks):
        return None

    def check(value):
        value = convert(value)
        if value is UNDECIDED:
            return UNDECIDED
        for ok in checks:
            if not ok(value):
                return UNDECIDED
        return value
    return check


def _string(value):
    return value if type(value) is str else UNDECIDED


def _boolean(value):
    return value if type(value) is bool else UNDECIDED


def _float(value):
    if type(value) is float:
        return value if math.isfinite(value) else UNDECIDED
    return float(value) if type(value) is int and abs(value) <= 2**53 else UNDECIDED


def _dict(value):
    return dict(value) if type(value) is dict else UNDECIDED


def field_check(field) -> Check | None:
    """The compiled check of one marshmallow field, or None when it is of a kind not compiled."""
    if field.data_key is not None or field.attribute is not None or field.allow_none:
        return None
    kind = type(field)
    if kind is fields.String:
        return _plain(field, _string)
    if kind is fields.Boolean:
        return _plain(field, _boolean)
    if kind is fields.Float and not field.allow_nan:
        return _plain(field, _float)
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _plain(field, _dict)
    if kind is fields.Nested and not field.many and not field.only and not field.exclude:
        nested = schema_check(field.nested if isinstance(field.nested, type) else type(field.nested))
        return None if nested is None else _plain(field, lambda v: nested(v) if type(v) is dict else UNDECIDED)
    if kind is fields.List:
        inner = field_check(field.inner)
        if inner is None:
            return None

        def items(value):
            if type(value) is not list:
                return UNDECIDED
            out = [inner(item) for item in value]
            return UNDECIDED if any(item is UNDECIDED for item in out) else out
        return _plain(field, items)
    return None


def hook_names(schema_class) -> set[str]:
    return {name for hooks in schema_class._hooks.values() for name, _, _ in hooks}


def _fields_loader(schema_class, hooks_allowed: set[str]) -> Callable[[dict], object] | None:
    """The loader of the schema's own fields, in its field order (as marshmallow builds its result)."""
    schema = schema_class()
    if schema.unknown != EXCLUDE or not hook_names(schema_class) <= hooks_allowed:
        return None
    plan = []
    for name, field in schema.load_fields.items():
        check = field_check(field)
        plan.append((name, check, field.required, field.load_default))

    def load(data: dict):
        out = {}
        for name, check, required, default in plan:
            value = data.get(name, missing)
            if value is missing:
                if required:
                    return UNDECIDED
                if default is not missing:
                    out[name] = default() if callable(default) else default
                continue
            if check is None:
                return UNDECIDED
            value = check(value)
            if value is UNDECIDED:
                return UNDECIDED
            out[name] = value
        return out
    return load


_compiled: dict[type, Callable | None] = {}


def schema_check(schema_class) -> Callable[[dict], object] | None:
    """A nested schema's compiled loader (Lenient's null dropping its only hook), or None."""
    if schema_class not in _compiled:
        _compiled[schema_class] = _fields_loader(schema_class, {"null_is_absent"})
    return _compiled[schema_class]


def _envelope(schema_class, graph_form, recipient, message_types, uncaptioned):
    load_fields = _fields_loader(schema_class, KNOWN_HOOKS)
    if load_fields is None:
        return None

    def load(body: dict) -> dict | None:
        try:
            data = graph_form(body)
        except ValidationError:
            return None
        data = load_fields(data)
        if data is UNDECIDED:
            return None
        # type_object_present
        kind = data.get("type", "text")
        if kind in message_types and data.get(kind) is None:
            return None
        if kind in uncaptioned and (data.get(kind) or {}).get("caption"):
            return None
        # recipient, then normalise
        to = recipient(data["to"])
        if to is None:
            return None
        data["to_input"] = data["to"]
        data["to"] = to
        for other in message_types:
            if other != kind:
                data.pop(other, None)
        return data
    return load


def send_body_loader(schema_class, *, graph_form, recipient, message_types, uncaptioned) -> Callable | None:
    """The compiled loader of a send body schema (``MessageBody`` or one that adds plain fields to it):
    ``load(body)`` gives what ``schema_class().load(body)`` gives, or None (marshmallow decides)."""
    if schema_class not in _compiled:
        _compiled[schema_class] = _envelope(schema_class, graph_form, recipient, message_types, uncaptioned)
    return _compiled[schema_class]
