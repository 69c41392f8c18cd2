"""The template a broadcast sends: approved, of the sending number's WhatsApp Business Account (or one
of the sandbox's own), with its category and variables."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from saas.broadcasts.variables import template_variables
from saas.messaging.models import MODE_SANDBOX, Template
from saas.messaging.templates.message_templates import SANDBOX_TEMPLATES, SENDABLE


@dataclass(frozen=True)
class Sendable:
    name: str
    language: str
    category: str          # Meta's: MARKETING, UTILITY, AUTHENTICATION
    variables: list        # "body.1", "header.1", "body.first_name" ...


def sendable(session, number, name: str, language: str) -> Sendable | str:
    """The approved template ``name`` in ``language`` that ``number`` may send, or why not (a sentence)."""
    if number.mode == MODE_SANDBOX:
        terms = SANDBOX_TEMPLATES.get((name, language))
        if terms is None:
            return "No such template for the sandbox number."
        status, category, components = terms.status, terms.category, []
    else:
        row = session.execute(select(Template.status, Template.category, Template.components).where(
            Template.tenant_id == number.tenant_id, Template.waba_id == number.waba_id, Template.name == name,
            Template.language == language)).first()
        if row is None:
            return "No such template in this number's WhatsApp Business Account (sync the templates first?)."
        status, category, components = row
    if status != SENDABLE:
        return f"This template is {status.lower().replace('_', ' ')}, not approved: it cannot be sent."
    return Sendable(name, language, category.upper(), template_variables(components))


def variables_of(session, broadcast, number) -> list[str]:
    """The variables of the broadcast's template as it is now (none when it is gone)."""
    found = sendable(session, number, broadcast.template_name, broadcast.template_language)
    return found.variables if isinstance(found, Sendable) else sorted(broadcast.variables or {})


def offered(session, tenant, numbers) -> list[tuple]:
    """(number, Sendable) for every approved template each of ``numbers`` (the tenant's) may send."""
    found = []
    for number in numbers:
        if number.mode == MODE_SANDBOX:
            names = [(t.name, t.language) for t in SANDBOX_TEMPLATES.values() if t.status == SENDABLE]
        else:
            names = session.execute(select(Template.name, Template.language).where(
                Template.tenant_id == tenant.id, Template.waba_id == number.waba_id, Template.status == SENDABLE)
                .order_by(Template.name, Template.language)).all()
        for name, language in sorted(names):
            template = sendable(session, number, name, language)
            if isinstance(template, Sendable):
                found.append((number, template))
    return found
