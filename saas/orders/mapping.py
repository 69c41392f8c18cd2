"""Which template each order event sends, and how its variables are filled from the order.

A mapping names an approved utility template of one of the tenant's numbers, and binds each of its
variables to an order field or a fixed text, with a default for an empty field. ``preview`` shows what it
would send for an order (the tenant's own, or a sample one). A template Meta later recategorised as
marketing is flagged (``flagged``): it costs more, and goes only to contacts who opted in.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from saas.broadcasts.templates import Sendable, sendable
from saas.broadcasts.variables import PLACEHOLDER, components_for
from saas.errors import InvalidRequest, NotFound
from saas.messaging.models import MODE_SANDBOX, PhoneNumber, Template
from saas.messaging.templates.message_templates import SANDBOX_TEMPLATES
from saas.orders.models import NotificationMapping
from saas.orders.states import EVENTS
from saas.text import problem
from saas.timeutil import utcnow

UTILITY = "UTILITY"
MARKETING = "MARKETING"
FIELDS = ("reference", "name", "state", "customer_name", "total", "currency", "items", "tracking_number",
          "tracking_url", "carrier")
MAX_VALUE = 1024


@dataclass(frozen=True)
class SampleOrder:
    """What a preview fills variables from when no order is named."""

    reference: str = "1001"
    name: str = "#1001"
    state: str = "shipped"
    customer_name: str = "Ayşe Yılmaz"
    total: str = "403.00"
    currency: str = "USD"
    items: tuple = ({"name": "IPod Nano - 8GB", "quantity": 2},)
    tracking_number: str = "1Z2345"
    tracking_url: str = "https://www.ups.com/WebTracking?trackNums=1Z2345"
    carrier: str = "UPS"


def order_values(order) -> dict:
    """Each field an order's template variables may take, as text (empty ones left out)."""
    items = ", ".join(f"{i.get('quantity', 1)} x {i.get('name')}" for i in (order.items or ()) if isinstance(i, dict))
    values = {"reference": order.reference, "name": order.name, "state": (order.state or "").replace("_", " "),
              "customer_name": order.customer_name, "total": order.total, "currency": order.currency,
              "items": items, "tracking_number": order.tracking_number, "tracking_url": order.tracking_url,
              "carrier": order.carrier}
    # WhatsApp refuses line breaks, tabs and long runs of spaces in a parameter (132018).
    return {k: " ".join(str(v).split())[:MAX_VALUE] for k, v in values.items() if v not in (None, "")}


def template_of(session, number, name: str, language: str) -> Sendable | str:
    """The approved template ``name`` of ``number``, or why it cannot be sent (a sentence)."""
    if number is None:
        return "The number this template was mapped on is gone."
    return sendable(session, number, name, language)


def category_now(session, number, name: str, language: str) -> str | None:
    """The template's category as Meta says it is now (None when it is gone)."""
    if number is None:
        return None
    if number.mode == MODE_SANDBOX:
        terms = SANDBOX_TEMPLATES.get((name, language))
        return terms.category if terms else None
    return session.scalar(select(Template.category).where(
        Template.tenant_id == number.tenant_id, Template.waba_id == number.waba_id, Template.name == name,
        Template.language == language))


def binding_problems(bindings, variables: list[str]) -> dict[str, str]:
    """What is wrong with ``bindings`` (variable -> {"field"|"value", "default"}) for ``variables``."""
    if not isinstance(bindings, dict):
        return {"variables": "Give an object: template variable -> {\"field\": ...} or {\"value\": ...}."}
    errors = {str(name)[:80]: "The template has no such variable." for name in bindings if name not in variables}
    for name in variables:
        found = _binding_problem(bindings.get(name))
        if found:
            errors[name] = found
    return errors


def _binding_problem(binding) -> str | None:
    if binding is None:
        return "Bind this variable to an order field or a fixed value."
    if not isinstance(binding, dict) or set(binding) - {"field", "value", "default"}:
        return "Give {\"field\": <order field>} or {\"value\": \"...\"}, and an optional \"default\"."
    if ("field" in binding) == ("value" in binding):
        return "Give exactly one of \"field\" and \"value\"."
    if "field" in binding and binding["field"] not in FIELDS:
        return f"A field is one of {', '.join(FIELDS)}."
    for key in ("value", "default"):
        value = binding.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_VALUE or problem(value)):
            return f"\"{key}\" is text of at most {MAX_VALUE} characters, without control characters."
    if "value" in binding and not (binding["value"] or "").strip():
        return "A fixed value cannot be empty."
    return None


def fill(bindings: dict, variables: list[str], values: dict) -> tuple[dict, list[str]]:
    """Each variable's value from the order's ``values``, and the variables left with none."""
    filled, missing = {}, []
    for name in variables:
        binding = bindings.get(name) or {}
        value = binding.get("value") or (values.get(binding["field"]) if "field" in binding else None)
        value = value or (binding.get("default") or "").strip() or None
        if value is None:
            missing.append(name)
        else:
            filled[name] = " ".join(value.split())[:MAX_VALUE]
    return filled, missing


def body(wa_id: str, name: str, language: str, variables: list[str], values: dict) -> dict:
    """The Cloud API body of a notification."""
    template = {"name": name, "language": {"code": language}}
    components = components_for(values, variables)
    if components:
        template["components"] = components
    return {"messaging_product": "whatsapp", "to": wa_id, "type": "template", "template": template}


def text_of(session, number, name: str, language: str, values: dict) -> str | None:
    """The template's body text with ``values`` in place (None when its text is not known here)."""
    if number is None or number.mode == MODE_SANDBOX:
        return None
    components = session.scalar(select(Template.components).where(
        Template.tenant_id == number.tenant_id, Template.waba_id == number.waba_id, Template.name == name,
        Template.language == language)) or []
    for component in components:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY":
            return PLACEHOLDER.sub(lambda m: values.get(f"body.{m.group(1)}", m.group(0)), str(component.get("text")))
    return None


# -- the tenant's mappings -------------------------------------------------------------------------------

def mappings_for(session, tenant) -> list[NotificationMapping]:
    return list(session.scalars(select(NotificationMapping).where(NotificationMapping.tenant_id == tenant.id)
                                .order_by(NotificationMapping.id)))


def get(session, tenant, event: str) -> NotificationMapping:
    """The tenant's mapping of ``event``; NotFound when there is none."""
    found = session.scalar(select(NotificationMapping).where(NotificationMapping.tenant_id == tenant.id,
                                                             NotificationMapping.event == event))
    if found is None:
        raise NotFound("No template is mapped to this event.")
    return found


def _number(session, tenant, phone_number_id) -> PhoneNumber:
    query = select(PhoneNumber).where(PhoneNumber.tenant_id == tenant.id, PhoneNumber.disconnected_at.is_(None))
    if phone_number_id is not None:
        if not isinstance(phone_number_id, str) or len(phone_number_id) > 64:
            raise InvalidRequest("Some fields are missing or invalid.",
                                 details={"phone_number_id": ["Give one of your numbers' phone_number_id."]})
        query = query.where(PhoneNumber.phone_number_id == phone_number_id)
    number = session.scalar(query.order_by(PhoneNumber.id).limit(1))
    if number is None:
        raise InvalidRequest("Some fields are missing or invalid.",
                             details={"phone_number_id": ["No such number on this account."]})
    return number


def checked(session, tenant, event: str, data: dict) -> tuple[PhoneNumber, Sendable, dict]:
    """``data`` ({"phone_number_id"?, "template": {"name", "language"}, "variables"?}) checked for ``event``:
    the number, the approved utility template, the bindings. Raises InvalidRequest with per-field details."""
    if event not in EVENTS:
        raise NotFound("No such order event.")
    template = data.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str) \
            or not isinstance(template.get("language", "en_US"), str):
        raise InvalidRequest("Some fields are missing or invalid.",
                             details={"template": ["Give {\"name\": ..., \"language\": ...}."]})
    number = _number(session, tenant, data.get("phone_number_id"))
    name, language = template["name"][:512], template.get("language", "en_US")[:15]
    found = template_of(session, number, name, language)
    if isinstance(found, str):
        raise InvalidRequest("Some fields are missing or invalid.", details={"template": [found]})
    if found.category != UTILITY:
        raise InvalidRequest("Some fields are missing or invalid.", details={"template": [
            f"This template is {found.category.lower()}: order notifications send utility templates."]})
    bindings = data.get("variables", {})
    errors = binding_problems(bindings, found.variables)
    if errors:
        raise InvalidRequest("Some variables are not bound right.", details={"variables": errors})
    return number, found, bindings


def put(session, tenant, event: str, data: dict) -> NotificationMapping:
    """Map ``event`` to a template (replacing its mapping). Commits. Raises as ``checked``."""
    number, found, bindings = checked(session, tenant, event, data)
    row = session.scalar(select(NotificationMapping).where(NotificationMapping.tenant_id == tenant.id,
                                                           NotificationMapping.event == event))
    now = utcnow()
    if row is None:
        row = NotificationMapping(tenant_id=tenant.id, event=event, created_at=now)
        session.add(row)
    row.phone_number_id, row.template_name, row.template_language = number.id, found.name, found.language
    row.category, row.variables, row.updated_at = found.category, bindings, now
    session.commit()
    return row


def delete(session, tenant, event: str) -> None:
    """Unmap ``event``: its states send nothing from now on. Commits; NotFound when it was not mapped."""
    session.delete(get(session, tenant, event))
    session.commit()


def flagged(session, row: NotificationMapping) -> str | None:
    """The category Meta gives the mapped template now, when it is no longer the utility one it was mapped as."""
    now = category_now(session, session.get(PhoneNumber, row.phone_number_id), row.template_name,
                       row.template_language)
    return now if now == MARKETING and row.category != MARKETING else None


def preview(session, tenant, event: str, data: dict | None = None, order=None) -> dict:
    """What ``event`` would send for ``order`` (a sample one without), with ``data`` in place of the mapping
    when given: the body, each variable's value, the ones left with none, the text."""
    if data is None:
        row = get(session, tenant, event)
        number = session.get(PhoneNumber, row.phone_number_id)
        found = template_of(session, number, row.template_name, row.template_language)
        if isinstance(found, str):
            raise InvalidRequest("Some fields are missing or invalid.", details={"template": [found]})
        bindings = row.variables or {}
    else:
        number, found, bindings = checked(session, tenant, event, data)
    order = order or SampleOrder()
    values, missing = fill(bindings, found.variables, order_values(order))
    wa_id = getattr(order, "wa_id", None) or "15551234567"
    return {"event": event, "template": {"name": found.name, "language": found.language,
                                         "category": found.category.lower()},
            "phone_number_id": number.phone_number_id, "variables": values, "missing": missing,
            "text": text_of(session, number, found.name, found.language, values),
            "body": body(wa_id, found.name, found.language, found.variables, values)}
