"""A tenant's custom contact attributes: their definitions (a key and a type) and the values contacts hold.

Types: ``text`` (at most TEXT_LENGTH characters), ``number`` (a finite number; whole numbers stay whole),
``boolean`` and ``date`` (an ISO date, YYYY-MM-DD, kept as that string). A contact holds values only for
defined keys; removing a definition removes its values from every contact of the tenant.
"""
from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import delete, func, select, text, update

from saas.audit import services as audit
from saas.contacts.models import ATTRIBUTE_TYPES, AttributeDefinition, Contact
from saas.contacts.values import FieldProblem
from saas.errors import InvalidRequest, NotFound
from saas.extensions import db
from saas.text import problem
from saas.timeutil import utcnow

KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TEXT_LENGTH = 500
# The most attributes a tenant defines (each contact row holds at most this many values).
MAX_DEFINITIONS = 100
# Largest magnitude a number attribute holds: what a JSON double keeps exactly as a whole number.
NUMBER_LIMIT = 2**53
TRUE_WORDS = frozenset({"true", "yes", "1", "y", "on", "evet"})
FALSE_WORDS = frozenset({"false", "no", "0", "n", "off", "hayır", "hayir"})


def definitions(tenant_id: int, session=None) -> dict[str, str]:
    """The tenant's attribute keys and their types, in the order they were defined."""
    session = session or db.session
    rows = session.execute(select(AttributeDefinition.key, AttributeDefinition.type)
                           .where(AttributeDefinition.tenant_id == tenant_id).order_by(AttributeDefinition.id))
    return {key: kind for key, kind in rows}


def definition_rows(tenant) -> list[AttributeDefinition]:
    return list(db.session.scalars(select(AttributeDefinition).where(AttributeDefinition.tenant_id == tenant.id)
                                   .order_by(AttributeDefinition.id)))


def check_key(key) -> str:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise FieldProblem("key", "1 to 40 lowercase letters, digits or underscores, starting with a letter "
                                  "(such as city or loyalty_points).")
    return key


def define(tenant, key, kind, *, actor) -> AttributeDefinition:
    """Add an attribute to the tenant's contacts. Commits. InvalidRequest when the key is taken or badly
    formed, the type unknown, or the tenant has MAX_DEFINITIONS already."""
    key = check_key(key)
    if kind not in ATTRIBUTE_TYPES:
        raise FieldProblem("type", f"One of {', '.join(ATTRIBUTE_TYPES)}.")
    existing = definitions(tenant.id)
    if key in existing:
        raise FieldProblem("key", f"The attribute {key} exists already (a {existing[key]}).")
    if len(existing) >= MAX_DEFINITIONS:
        raise InvalidRequest(f"A contact has at most {MAX_DEFINITIONS} custom attributes; remove one first.")
    row = AttributeDefinition(tenant_id=tenant.id, key=key, type=kind, created_at=utcnow())
    db.session.add(row)
    audit.record(actor, "contact_attribute.defined", f"Defined the contact attribute {key} ({kind})",
                 tenant_id=tenant.id, key=key, type=kind)
    db.session.commit()
    return row


def remove(tenant, key, *, actor) -> int:
    """Remove an attribute and every contact's value of it; how many contacts held one. Commits.
    NotFound when the tenant has no such attribute."""
    if not isinstance(key, str) or key not in definitions(tenant.id):
        raise NotFound("No such attribute.")
    holders = _without_key(tenant.id, key)
    db.session.execute(delete(AttributeDefinition).where(AttributeDefinition.tenant_id == tenant.id,
                                                         AttributeDefinition.key == key))
    audit.record(actor, "contact_attribute.removed", f"Removed the contact attribute {key} from "
                 f"{holders} contact{'s' if holders != 1 else ''}", tenant_id=tenant.id, key=key)
    db.session.commit()
    return holders


def holds(key: str, dialect: str):
    """The condition "the contact holds a value for ``key``" on this database."""
    if dialect == "postgresql":
        return Contact.attributes.op("->")(key).is_not(None)
    return func.json_type(Contact.attributes, f'$."{key}"').is_not(None)


def _without_key(tenant_id: int, key: str) -> int:
    """Take ``key`` out of the attributes of every contact of the tenant that holds it, in one statement."""
    session = db.session
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        without = text("(attributes::jsonb - :attribute_key)::json").bindparams(attribute_key=key)
    else:
        without = func.json_remove(Contact.attributes, f'$."{key}"')
    statement = (update(Contact).where(Contact.tenant_id == tenant_id, holds(key, dialect))
                 .values(attributes=without, updated_at=utcnow()))
    return session.execute(statement, execution_options={"synchronize_session": False}).rowcount


# -- values --------------------------------------------------------------------------------------------


def value_of(kind: str, raw, *, field: str, from_text: bool = False):
    """``raw`` as an attribute of type ``kind`` holds it; FieldProblem(field) when it is not one.
    ``from_text``: ``raw`` is a cell of a CSV or a form field (numbers and booleans written as words)."""
    if kind == "text":
        return _text(raw, field)
    if kind == "number":
        return _number(raw, field, from_text)
    if kind == "boolean":
        return _boolean(raw, field, from_text)
    return _date(raw, field)


def _text(raw, field):
    if not isinstance(raw, str):
        raise FieldProblem(field, "Must be a string.")
    if len(raw) > TEXT_LENGTH:
        raise FieldProblem(field, f"At most {TEXT_LENGTH} characters.")
    found = problem(raw)
    if found:
        raise FieldProblem(field, found)
    return raw


def _number(raw, field, from_text):
    if from_text and isinstance(raw, str):
        try:
            number = Decimal(raw.strip())
        except InvalidOperation:
            raise FieldProblem(field, "A number, such as 42 or 3.5.") from None
        if not number.is_finite() or abs(number) > NUMBER_LIMIT:
            raise FieldProblem(field, f"A finite number, at most {NUMBER_LIMIT:,} either side of zero.")
        raw = int(number) if number == number.to_integral_value() else float(number)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise FieldProblem(field, "A number, such as 42 or 3.5.")
    if isinstance(raw, float) and (not math.isfinite(raw)):
        raise FieldProblem(field, "A finite number.")
    if abs(raw) > NUMBER_LIMIT:
        raise FieldProblem(field, f"At most {NUMBER_LIMIT:,} either side of zero.")
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw


def _boolean(raw, field, from_text):
    if isinstance(raw, bool):
        return raw
    if from_text and isinstance(raw, str):
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise FieldProblem(field, "true or false" + (" (or yes/no, 1/0)." if from_text else "."))


def _date(raw, field):
    if isinstance(raw, str) and len(raw.strip()) == 10:
        try:
            return date.fromisoformat(raw.strip()).isoformat()
        except ValueError:
            pass
    raise FieldProblem(field, "A date as YYYY-MM-DD, such as 2026-03-31.")


def changed(current: dict, changes: dict, kinds: dict[str, str], *, prefix: str = "attributes",
            from_text: bool = False) -> dict:
    """``current`` with ``changes`` applied: a key set to None (or an empty cell, ``from_text``) is removed.
    Every key must be defined (``kinds``); InvalidRequest names each bad one."""
    if not isinstance(changes, dict) or len(changes) > MAX_DEFINITIONS:
        raise FieldProblem(prefix, f"An object of at most {MAX_DEFINITIONS} attribute keys and values.")
    result = dict(current or {})
    problems: dict[str, list[str]] = {}
    for key, raw in changes.items():
        field = f"{prefix}.{key}"
        if key not in kinds:
            problems[field] = ["No such attribute; define it first (GET /api/v1/contacts/attributes lists them)."]
        elif raw is None or (from_text and isinstance(raw, str) and not raw.strip()):
            result.pop(key, None)
        else:
            try:
                result[key] = value_of(kinds[key], raw, field=field, from_text=from_text)
            except FieldProblem as exc:
                problems[field] = [exc.reason]
    if problems:
        raise InvalidRequest("Some attributes are invalid.", details=problems)
    return result
