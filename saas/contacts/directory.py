"""Finding and creating a tenant's contacts: the one place a WhatsApp id is parsed and a contact made."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select

from saas.contacts.models import SOURCE_API, Contact, ContactEvent
from saas.timeutil import utcnow

PHONE_NOISE = re.compile(r"[\s\-.()]")
DIGITS = re.compile(r"[0-9]{7,15}")


@dataclass(frozen=True)
class WaId:
    """A WhatsApp id as a contact is keyed on: its digits, and the region phonenumbers gives them."""

    digits: str
    country: str | None
    valid: bool      # a number phonenumbers knows to be assigned in its country
    possible: bool   # of a length its country's numbers can have


def parse_wa_id(value: str, *, validity: bool = True) -> WaId | None:
    """``value`` (with or without +, spaces, dashes, dots, parentheses) as a WhatsApp id, or None when
    it is not 7 to 15 ASCII digits. WhatsApp ids always carry their country code; ``country`` is the
    number's region, or its country code's main region when phonenumbers does not know the number
    (+1 555 numbers are "US"). Without ``validity`` (imports: it costs as much as the rest) ``valid`` is False."""
    if not isinstance(value, str):
        return None
    digits = PHONE_NOISE.sub("", value).removeprefix("+")
    if not DIGITS.fullmatch(digits):
        return None
    return _parsed(digits, validity)


# The same numbers come again and again (a batch's contacts are parsed as they are found, then as they
# are made; a customer writes and is answered), and phonenumbers' parse is the dear part.
@functools.lru_cache(maxsize=4096)
def _parsed(digits: str, validity: bool) -> WaId:
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return WaId(digits, None, False, False)
    region = (phonenumbers.region_code_for_number(number)
              or phonenumbers.region_code_for_country_code(number.country_code))
    return WaId(digits, region if region and region != "ZZ" else None,
                validity and phonenumbers.is_valid_number(number), phonenumbers.is_possible_number(number))


def find(session, tenant_id: int, *, wa_id: str | None = None, user_id: str | None = None) -> Contact | None:
    """The tenant's contact with this WhatsApp id (digits) or, failing that, this Meta user id."""
    if wa_id:
        found = session.scalar(select(Contact).where(Contact.tenant_id == tenant_id, Contact.wa_id == wa_id))
        if found is not None:
            return found
    if user_id:
        return session.scalar(select(Contact).where(Contact.tenant_id == tenant_id, Contact.user_id == user_id))
    return None


def find_or_create(session, tenant_id: int, *, wa_id: str | None = None, user_id: str | None = None,
                   name: str | None = None, source: str = SOURCE_API, actor: str | None = None) -> tuple[Contact, bool]:
    """The tenant's contact for ``wa_id`` (digits, as parse_wa_id gives them) or ``user_id``, made
    when there is none (with a "created" history entry); and whether it was made. A contact found by
    one key learns the other. Flushes, does not commit: the caller's transaction owns the change.
    Two transactions creating the same contact collide on the unique keys; the caller retries."""
    if not wa_id and not user_id:
        raise ValueError("a contact needs a WhatsApp id or a Meta user id")
    contact = find(session, tenant_id, wa_id=wa_id, user_id=user_id)
    if contact is not None:
        changed = False
        if wa_id and not contact.wa_id:
            contact.wa_id, contact.country, changed = wa_id, _country(wa_id), True
        if user_id and not contact.user_id:
            contact.user_id, changed = user_id, True
        if name and not contact.name:
            contact.name, changed = name[:200], True
        if changed:
            contact.updated_at = utcnow()
            session.flush()
        return contact, False
    contact = Contact(tenant_id=tenant_id, wa_id=wa_id, user_id=user_id, name=name[:200] if name else None,
                      country=_country(wa_id) if wa_id else None, source=source, attributes={})
    session.add(contact)
    session.flush()
    session.add(ContactEvent(tenant_id=tenant_id, contact_id=contact.id, kind="created", source=source,
                             actor=actor, detail={}))
    session.flush()
    return contact, True


def _country(wa_id: str) -> str | None:
    parsed = parse_wa_id(wa_id)
    return parsed.country if parsed else None
