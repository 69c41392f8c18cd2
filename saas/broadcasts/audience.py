"""Who a broadcast goes to: its audience, as the tenant describes it, and the tenant's contacts it
names, read in id order a chunk at a time (a 100,000-contact audience is never held whole)."""
from __future__ import annotations

import re

from sqlalchemy import exists, func, or_, select

from saas.contacts.directory import find_or_create, parse_wa_id
from saas.contacts.models import SOURCE_IMPORT, Contact, ContactLabel
from saas.errors import ApiError
from saas.ids import parse_id
from saas.text import problem

MAX_LABELS = 20
MAX_LISTED = 10_000   # picked contacts, or numbers of an uploaded list
MAX_COUNTRIES = 50
MAX_ATTRIBUTES = 10
LABEL = 50
COUNTRY = re.compile(r"^[A-Z]{2}$")
ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
CHUNK = 1000


class ContactLimit(ApiError):
    """An uploaded list whose new numbers would take the tenant past its plan's contacts."""

    status = 403
    code = "plan_limit"
    graph_code = 4033

    def __init__(self, limit: int, stored: int, new: int):
        super().__init__(f"Your plan stores at most {limit} contacts; you have {stored} and the list adds {new}. "
                         "Upgrade your plan to store more.",
                         details={"limit": "max_contacts", "max_contacts": limit, "stored": stored, "new": new},
                         upgrade=True)


class AudienceInvalid(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def validated(spec) -> dict:
    """``spec`` as stored: {"all", "labels", "contact_ids", "wa_ids", "country", "attributes"}, each bounded.
    Raises AudienceInvalid, per key. At least one of all, labels, contact_ids, wa_ids says who."""
    if not isinstance(spec, dict):
        raise AudienceInvalid({"audience": "Give an object: labels, contact_ids, wa_ids or all, and filters."})
    errors: dict[str, str] = {}
    unknown = set(spec) - {"all", "labels", "contact_ids", "wa_ids", "country", "attributes"}
    if unknown:
        errors["audience"] = f"Unknown keys: {', '.join(sorted(str(k)[:40] for k in unknown))}."
    out = {"all": spec.get("all") is True}
    out["labels"] = _strings(spec.get("labels"), MAX_LABELS, "labels", errors,
                             lambda v: 0 < len(v) <= LABEL and not problem(v))
    ids = spec.get("contact_ids") or []
    if not isinstance(ids, list) or len(ids) > MAX_LISTED or any(
            isinstance(i, bool) or parse_id(i) is None for i in ids):
        errors["contact_ids"] = f"A list of at most {MAX_LISTED} contact ids."
    else:
        out["contact_ids"] = sorted({parse_id(i) for i in ids})
    out["wa_ids"] = _strings(spec.get("wa_ids"), MAX_LISTED, "wa_ids", errors, lambda v: parse_wa_id(v) is not None)
    out["country"] = _strings(spec.get("country"), MAX_COUNTRIES, "country", errors, COUNTRY.match)
    attributes = spec.get("attributes") or {}
    if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES or any(
            not ATTRIBUTE_KEY.match(str(k)) or not _scalar(v) for k, v in attributes.items()):
        errors["attributes"] = (f"At most {MAX_ATTRIBUTES} attribute keys, each equal to a text (at most 200 "
                                "characters), number or true/false.")
    else:
        out["attributes"] = attributes
    if not errors and not (out["all"] or out["labels"] or out.get("contact_ids") or out["wa_ids"]):
        errors["audience"] = "Say who receives it: labels, contact_ids, wa_ids (an uploaded list), or all: true."
    if errors:
        raise AudienceInvalid(errors)
    return out


def _strings(value, limit: int, key: str, errors: dict, valid) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit or any(not isinstance(v, str) or not valid(v) for v in value):
        errors[key] = f"A list of at most {limit} valid values."
        return []
    return sorted(set(value))


def _scalar(value) -> bool:
    if isinstance(value, str):
        return len(value) <= 200 and not problem(value)
    return isinstance(value, (bool, int, float)) and value == value


def take_list(session, tenant_id: int, spec: dict, actor: str | None, max_contacts: int | None = None) -> dict:
    """An uploaded list's numbers made the tenant's contacts (found, or created as imported) and kept as
    picked contact ids. Flushes; the caller commits. Raises ContactLimit when the new ones would take
    the tenant past ``max_contacts`` (its plan's contacts stored; None: no limit), creating none."""
    listed = sorted({parse_wa_id(value).digits for value in spec.pop("wa_ids", None) or []})
    ids = set(spec.get("contact_ids") or [])
    if listed and max_contacts is not None:
        known = set()
        for part in range(0, len(listed), CHUNK):
            known.update(session.scalars(select(Contact.wa_id).where(
                Contact.tenant_id == tenant_id, Contact.wa_id.in_(listed[part:part + CHUNK]))))
        stored = session.scalar(select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant_id))
        if stored + len(set(listed) - known) > max_contacts:
            raise ContactLimit(max_contacts, stored, len(set(listed) - known))
    for digits in listed:
        contact, _ = find_or_create(session, tenant_id, wa_id=digits, source=SOURCE_IMPORT, actor=actor)
        ids.add(contact.id)
    spec["contact_ids"] = sorted(ids)
    return spec


def contacts_query(tenant_id: int, spec: dict, after: int = 0, limit: int = CHUNK):
    """The select of the audience's contacts with ids above ``after``, in id order (the attribute
    filter is applied to what it reads: ``matches``)."""
    query = select(Contact).where(Contact.tenant_id == tenant_id, Contact.id > after)
    if not spec.get("all"):
        named = []
        if spec.get("contact_ids"):
            named.append(Contact.id.in_(spec["contact_ids"]))
        if spec.get("labels"):
            named.append(exists().where(ContactLabel.tenant_id == tenant_id, ContactLabel.contact_id == Contact.id,
                                        ContactLabel.label.in_(spec["labels"])))
        query = query.where(or_(*named)) if named else query.where(Contact.id < 0)
    if spec.get("country"):
        query = query.where(Contact.country.in_(spec["country"]))
    return query.order_by(Contact.id).limit(limit)


def size(session, tenant_id: int, spec: dict) -> int:
    """How many contacts the audience names before its attribute filter (at least as many as it reaches)."""
    named = contacts_query(tenant_id, spec).order_by(None).limit(None).with_only_columns(Contact.id).subquery()
    return session.scalar(select(func.count()).select_from(named)) or 0


def matches(contact, spec: dict) -> bool:
    """Whether ``contact`` passes the audience's attribute filter (equal values, compared as text)."""
    attributes = contact.attributes or {}
    return all(str(attributes.get(key)).lower() == str(value).lower() for key, value in
               (spec.get("attributes") or {}).items())


def stream(session, tenant_id: int, spec: dict, after: int = 0, chunk: int = CHUNK):
    """The audience's contacts, a list of at most ``chunk`` at a time, in id order, from ``after``."""
    while True:
        rows = list(session.scalars(contacts_query(tenant_id, spec, after, chunk)))
        if not rows:
            return
        after = rows[-1].id
        yield [row for row in rows if matches(row, spec)], after
        if len(rows) < chunk:
            return
