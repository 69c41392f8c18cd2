"""A template's variables, what each is bound to (a contact's field, or a fixed value, with a default
for an empty field), and their values for one contact. Pure functions: no database."""
from __future__ import annotations

import re

from saas.text import problem

# {{1}} (positional) or {{first_name}} (named), in a HEADER or BODY text.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,60})\s*\}\}")
COMPONENTS = ("header", "body")
FIELDS = ("name", "wa_id")
ATTRIBUTE = re.compile(r"^attr:[a-z][a-z0-9_]{0,39}$")
# WhatsApp takes at most 1,024 characters in a text parameter, on one line.
MAX_VALUE = 1024
MAX_VARIABLES = 60


def template_variables(components) -> list[str]:
    """The variables of a template's ``components`` (Meta's), in the order they are sent: "header.1",
    "body.1", "body.2", "body.first_name" ... A template with none (or no components known) has none."""
    found: list[str] = []
    for component in components or ():
        if not isinstance(component, dict):
            continue
        kind = str(component.get("type", "")).lower()
        if kind not in COMPONENTS or not isinstance(component.get("text"), str):
            continue
        names = []
        for name in PLACEHOLDER.findall(component["text"]):
            if name not in names:
                names.append(name)
        if all(name.isdigit() for name in names):
            names.sort(key=int)
        found.extend(f"{kind}.{name}" for name in names)
    return found[:MAX_VARIABLES]


def binding_problems(bindings, variables: list[str]) -> dict[str, str]:
    """What is wrong with ``bindings`` (variable -> {"field"|"value", "default"}) for ``variables``."""
    if not isinstance(bindings, dict):
        return {"variables": "Give an object: template variable -> {\"field\": ...} or {\"value\": ...}."}
    errors = {}
    for name in bindings:
        if name not in variables:
            errors[str(name)[:80]] = "The template has no such variable."
    for name in variables:
        binding = bindings.get(name)
        problem_text = _binding_problem(binding)
        if problem_text:
            errors[name] = problem_text
    return errors


def _binding_problem(binding) -> str | None:
    if binding is None:
        return "Bind this variable to a contact field or a fixed value."
    if not isinstance(binding, dict) or set(binding) - {"field", "value", "default"}:
        return "Give {\"field\": \"name\" | \"wa_id\" | \"attr:<key>\"} or {\"value\": \"...\"}, and an optional \"default\"."
    if ("field" in binding) == ("value" in binding):
        return "Give exactly one of \"field\" and \"value\"."
    field = binding.get("field")
    if "field" in binding and (not isinstance(field, str) or not (field in FIELDS or ATTRIBUTE.match(field))):
        return "A field is \"name\", \"wa_id\" or \"attr:<key>\" (a custom attribute's key)."
    for key in ("value", "default"):
        if key in binding and binding[key] is not None:
            value = binding[key]
            if not isinstance(value, str) or len(value) > MAX_VALUE or problem(value):
                return f"\"{key}\" is text of at most {MAX_VALUE} characters, without control characters."
    if "value" in binding and not (binding["value"] or "").strip():
        return "A fixed value cannot be empty."
    return None


def field_value(contact, field: str) -> str | None:
    """``contact``'s value of ``field`` as text; None when it has none. ``contact`` has name, wa_id and
    attributes."""
    if field == "name":
        value = contact.name
    elif field == "wa_id":
        value = contact.wa_id
    else:
        value = (contact.attributes or {}).get(field.removeprefix("attr:"))
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    # WhatsApp refuses line breaks, tabs and long runs of spaces in a parameter (132018).
    text = " ".join(str(value).split())
    return text[:MAX_VALUE] or None


def render(contact, bindings: dict, variables: list[str]) -> tuple[dict, list[str]]:
    """Each variable's value for ``contact``, and the variables left with none (no value, no default)."""
    values, missing = {}, []
    for name in variables:
        binding = bindings.get(name) or {}
        value = binding.get("value") or (field_value(contact, binding["field"]) if "field" in binding else None)
        if not value:
            value = (binding.get("default") or "").strip() or None
        if value is None:
            missing.append(name)
        else:
            values[name] = value
    return values, missing


def components_for(values: dict, variables: list[str]) -> list[dict]:
    """The template's ``components`` of a send: each variable's value, in the template's order."""
    components = []
    for kind in COMPONENTS:
        parameters = []
        for name in variables:
            component, _, key = name.partition(".")
            if component != kind:
                continue
            parameter = {"type": "text", "text": values.get(name, "")}
            if not key.isdigit():
                parameter["parameter_name"] = key
            parameters.append(parameter)
        if parameters:
            components.append({"type": kind, "parameters": parameters})
    return components
