"""Message templates: created and deleted through Graph, and checked by the send path before a template
leaves. They are synced from each WhatsApp Business Account by saas.messaging.templates.sync, and Meta's
webhooks keep them current between syncs (saas.messaging.templates.updates).

Templates belong to a WABA; a tenant reaches its WABAs through its live numbers
(their ``waba_id`` and access token). Sandbox numbers have no WABA: they offer
the built-in ``SANDBOX_TEMPLATES`` instead, so a sandbox tenant can rehearse
template sends (and their refusals) without connecting anything.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from saas import cache
from saas.audit import services as audit
from saas.errors import TemplateDisabled, TemplateNotApproved, TemplateNotFound, TemplatePaused
from saas.extensions import db
from saas.messaging.numbers.graph import GraphError
from saas.messaging.models import MODE_LIVE, MODE_SANDBOX, PhoneNumber, Template
from saas.crypto import decrypt_token
from saas.tenants.scoping import get_owned, owned_query

NAME = re.compile(r"^[a-z0-9_]{1,512}$")
# Meta's locale codes: en, en_US, pt_BR, zh_HK, es_LA ...
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
# Meta's template statuses; only APPROVED ones can be sent.
STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "PENDING_DELETION",
            "DELETED", "LIMIT_EXCEEDED", "ARCHIVED")
SENDABLE = "APPROVED"
QUALITY_SCORES = ("GREEN", "YELLOW", "RED", "UNKNOWN")
# Bounds on what a tenant sends Meta (and we store): WhatsApp's components are few and small.
MAX_COMPONENTS = 10
MAX_COMPONENTS_BYTES = 16 * 1024
MAX_COMPONENTS_DEPTH = 8


@dataclass(frozen=True)
class TemplateTerms:
    """What the send path needs of a template, safe to share between requests."""

    name: str
    language: str
    status: str
    category: str  # Meta's: MARKETING, UTILITY, AUTHENTICATION

    @property
    def metering_category(self) -> str:
        """The conversation category a send of it is metered in."""
        category = self.category.lower()
        # Meta recategorises to marketing when unsure; so do we for anything unexpected.
        return category if category in ("marketing", "utility", "authentication") else "marketing"


# The sandbox's own templates (no WABA behind a sandbox number): Meta's sample hello_world
# and one per category, plus a paused and a disabled one to rehearse those refusals.
SANDBOX_TEMPLATES = {(t.name, t.language): t for t in (
    TemplateTerms("hello_world", "en_US", "APPROVED", "UTILITY"),
    TemplateTerms("order_update", "en_US", "APPROVED", "UTILITY"),
    TemplateTerms("seasonal_promotion", "en_US", "APPROVED", "MARKETING"),
    TemplateTerms("verification_code", "en_US", "APPROVED", "AUTHENTICATION"),
    TemplateTerms("sandbox_paused", "en_US", "PAUSED", "MARKETING"),
    TemplateTerms("sandbox_disabled", "en_US", "DISABLED", "MARKETING"),
)}

cache.watch(Template)


class SendableTemplates:
    """What the send path checks of a template: read in ``session`` (a scoped session) and kept in the
    snapshot cache ``caches("templates")``; no app context needed."""

    def __init__(self, session, caches):
        self.session = session
        self.caches = caches

    def __call__(self, number, name: str, language: str) -> TemplateTerms:
        """The template ``number`` (a NumberSnapshot) may send as (name, language), or the refusal Meta would give.

        Raises TemplateNotFound (132001), TemplateNotApproved (132001: pending,
        rejected, in appeal ...), TemplatePaused (132015) or TemplateDisabled
        (132016). Read from the per-process snapshot cache (ACCESS_CACHE_SECONDS):
        a status change committed elsewhere is honoured here within that time.
        """
        details = {"template": name, "language": language}
        if number.mode == MODE_SANDBOX:
            terms = SANDBOX_TEMPLATES.get((name, language))
        elif number.waba_id is None:
            terms = None
        else:
            key = (number.tenant_id, number.waba_id, name, language)
            terms = self.caches("templates").get(key, lambda: self._load_terms(*key))
        if terms is None:
            raise TemplateNotFound(details=details)
        if terms.status == SENDABLE:
            return terms
        details["status"] = terms.status
        if terms.status == "PAUSED":
            raise TemplatePaused(details=details)
        if terms.status == "DISABLED":
            raise TemplateDisabled(details=details)
        raise TemplateNotApproved(f"This template is {terms.status.lower().replace('_', ' ')}, not approved by "
                                  "WhatsApp, so it cannot be sent.", details=details)

    def _load_terms(self, tenant_id, waba_id, name, language) -> TemplateTerms | None:
        row = self.session.execute(select(Template.name, Template.language, Template.status, Template.category).where(
            Template.tenant_id == tenant_id, Template.waba_id == waba_id, Template.name == name,
            Template.language == language)).first()
        return TemplateTerms(*row) if row is not None else None


# -- reading ---------------------------------------------------------------------------------------

def templates_for(tenant) -> list[Template]:
    return list(db.session.scalars(owned_query(Template, tenant).order_by(
        Template.waba_id, Template.name, Template.language)))


@dataclass(frozen=True)
class Waba:
    waba_id: str
    token: str  # decrypted; never stored or logged


def wabas_for(tenant) -> list[Waba]:
    """The tenant's WhatsApp Business Accounts, each with the token of one of its live numbers."""
    rows = db.session.execute(
        select(PhoneNumber.waba_id, PhoneNumber.access_token_encrypted)
        .where(PhoneNumber.tenant_id == tenant.id, PhoneNumber.mode == MODE_LIVE,
               PhoneNumber.waba_id.is_not(None), PhoneNumber.access_token_encrypted.is_not(None))
        .order_by(PhoneNumber.id)).all()
    found: dict[str, Waba] = {}
    for waba_id, encrypted in rows:
        if waba_id not in found:
            found[waba_id] = Waba(waba_id, decrypt_token(encrypted))
    return list(found.values())


def _waba(tenant, waba_id: str) -> Waba | None:
    return next((w for w in wabas_for(tenant) if w.waba_id == waba_id), None)


# -- what Meta says of a template ------------------------------------------------------------------

def bounded_text(value, limit: int) -> str | None:
    """Text from Meta made safe to store: no NUL, at most ``limit`` characters; None stays None."""
    if value is None:
        return None
    text = str(value).replace("\x00", "")
    return text[:limit]


def reason_text(value) -> str | None:
    """Meta's rejection or pause reason, bounded; None for none ("NONE")."""
    text = bounded_text(value, 300)
    return None if text in (None, "", "NONE") else text


# -- creating and deleting -------------------------------------------------------------------------

class TemplateInvalid(Exception):
    """What is wrong with a template to create, per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def components_problem(components) -> str | None:
    """Why ``components`` cannot be a template's components, or None."""
    if not isinstance(components, list) or not components:
        return "Give a JSON list of components, e.g. [{\"type\": \"BODY\", \"text\": \"Hello {{1}}\"}]."
    if len(components) > MAX_COMPONENTS:
        return f"At most {MAX_COMPONENTS} components."
    if any(not isinstance(c, dict) or not isinstance(c.get("type"), str) or not c["type"] for c in components):
        return "Every component is an object with a \"type\" (HEADER, BODY, FOOTER, BUTTONS ...)."
    stack = [(components, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_COMPONENTS_DEPTH:
            return f"Components are nested more than {MAX_COMPONENTS_DEPTH} levels deep."
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in (*item.keys(), *item.values()))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str) and "\x00" in item:
            return "Components must not contain NUL characters."
        elif isinstance(item, float) and item != item:
            return "Components must not contain NaN."
    if len(json.dumps(components, ensure_ascii=False).encode()) > MAX_COMPONENTS_BYTES:
        return f"Components must be at most {MAX_COMPONENTS_BYTES // 1024} KB of JSON."
    return None


def validate_template(name, language, category, components) -> dict:
    """The template's fields, checked; raises TemplateInvalid with a message per bad field."""
    errors = {}
    if not isinstance(name, str) or not NAME.match(name):
        errors["name"] = "Use 1 to 512 lowercase letters, digits and underscores."
    if not isinstance(language, str) or len(language) > 15 or not LANGUAGE.match(language):
        errors["language"] = "Use a WhatsApp language code such as en_US, pt_BR or de."
    if category not in CATEGORIES:
        errors["category"] = "Choose MARKETING, UTILITY or AUTHENTICATION."
    problem = components_problem(components)
    if problem:
        errors["components"] = problem
    if errors:
        raise TemplateInvalid(errors)
    return {"name": name, "language": language, "category": category, "components": components}


def create_template(graph, tenant, *, waba_id: str, name, language, category, components, actor) -> Template:
    """Submit a new template to the WABA for review and keep it (PENDING) here. Commits.

    Raises TemplateInvalid (our validation, Graph not called), GraphError
    (Meta refused: its message says why) or GraphUnavailable.
    """
    fields = validate_template(name, language, category, components)
    waba = _waba(tenant, waba_id)
    if waba is None:
        raise TemplateInvalid({"waba_id": "Choose the WhatsApp Business Account of one of your live numbers."})
    taken = db.session.scalar(select(Template.id).where(
        Template.tenant_id == tenant.id, Template.waba_id == waba_id, Template.name == name,
        Template.language == language))
    if taken is not None:
        raise TemplateInvalid({"name": "A template with this name and language already exists."})
    answer = graph.post(graph.url(waba_id, "message_templates"), waba.token, fields)
    meta_category = str(answer.get("category") or category).upper()
    template = Template(tenant_id=tenant.id, waba_id=waba_id, meta_id=bounded_text(answer.get("id"), 64), name=name,
                        language=language, status=(bounded_text(answer.get("status"), 30) or "PENDING").upper(),
                        category=meta_category if meta_category in CATEGORIES else category,
                        components=components)
    try:
        db.session.add(template)
        audit.record(actor, "templates.create", f"Template {name} ({language}) submitted to WhatsApp",
                     tenant_id=tenant.id, name=name, language=language, category=template.category)
        db.session.commit()
    except IntegrityError:
        # A sync or a second submit stored it meanwhile: Meta has it once, and so do we.
        db.session.rollback()
        raise TemplateInvalid({"name": "A template with this name and language already exists."}) from None
    except BaseException:
        db.session.rollback()
        raise
    return template


def delete_template(graph, tenant, template_id, *, actor) -> list[str]:
    """Delete the template (every language of its name, as Meta does) from its WABA and here. Commits.

    Returns the languages removed. Raises NotFound (not the tenant's),
    GraphError (Meta refused) or GraphUnavailable; nothing changes here then.
    """
    template = get_owned(Template, template_id, tenant, what="template")
    name, waba_id = template.name, template.waba_id
    waba = _waba(tenant, waba_id)
    if waba is None:
        raise GraphError(400, None, "None of your live numbers belongs to this template's WhatsApp Business "
                                    "Account any more, so it cannot be deleted there.")
    graph.delete(graph.url(waba_id, "message_templates"), waba.token, {"name": name})
    try:
        rows = list(db.session.scalars(owned_query(Template, tenant).where(
            Template.waba_id == waba_id, Template.name == name)))
        for row in rows:
            db.session.delete(row)
        audit.record(actor, "templates.delete", f"Template {name} deleted from WhatsApp", tenant_id=tenant.id,
                     name=name, languages=[r.language for r in rows])
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return [r.language for r in rows]
