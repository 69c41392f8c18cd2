"""What a contact's fields may hold, checked the same way for the API, the portal and imports.

Each check returns the value as it is stored or raises ``FieldProblem`` naming the field; the faces turn
that into the API's 400 (``details`` per field) or a form error next to the field.
"""
from __future__ import annotations

import re
import unicodedata

from saas.contacts.directory import WaId, parse_wa_id
from saas.errors import InvalidRequest
from saas.text import problem

NAME_LENGTH = 200
USER_ID_LENGTH = 100
LABEL_LENGTH = 50
# The most labels one contact, or one request, names.
MAX_LABELS = 50
# A label: letters and digits of any script (with their accents), and spaces, dashes, underscores, dots and
# colons between them (as Chatwoot's labels: "vip", "spring-sale", "city:izmir"); kept lowercase.
LABEL_PUNCTUATION = frozenset(" -_.:")
# Meta's business-scoped user id: letters, digits, dots, dashes and underscores.
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Labels in one CSV cell or form field: separated by ; or | (commas stay free for the CSV itself).
LABEL_SEPARATORS = re.compile(r"[;|]")


class FieldProblem(InvalidRequest):
    """A field's value that cannot be stored; ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str):
        super().__init__("Some fields are missing or invalid.", details={field: [reason]})
        self.field = field
        self.reason = reason


def wa_id(value, field: str = "wa_id") -> str:
    """A WhatsApp id (a phone number with its country code; +, spaces, dashes, dots and parentheses
    allowed) as its digits. FieldProblem when it is not a number a phone could have."""
    return phone(value, field).digits


def phone(value, field: str = "wa_id") -> WaId:
    """``wa_id``'s check, answering the parsed number: its digits and country (not its validity)."""
    if not isinstance(value, str) or len(value) > 40:
        raise FieldProblem(field, "A phone number with its country code, such as +90 532 123 45 67.")
    parsed = parse_wa_id(value, validity=False)
    if parsed is None or not parsed.possible:
        raise FieldProblem(field, "Not a phone number with its country code (such as +90 532 123 45 67): "
                                  "7 to 15 digits of a length its country's numbers have.")
    return parsed


def user_id(value, field: str = "user_id") -> str:
    """Meta's user id for a user known by a username (as WhatsApp's webhooks give it)."""
    if not isinstance(value, str) or not USER_ID.fullmatch(value):
        raise FieldProblem(field, f"Meta's user id: 1 to {USER_ID_LENGTH} letters, digits, dots, dashes or "
                                  "underscores.")
    return value


def name(value, field: str = "name") -> str | None:
    """A contact's name, trimmed; None for an empty one."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldProblem(field, "Must be a string.")
    value = " ".join(value.split())  # line breaks and tabs become single spaces
    if len(value) > NAME_LENGTH:
        raise FieldProblem(field, f"At most {NAME_LENGTH} characters.")
    found = problem(value)
    if found:
        raise FieldProblem(field, found)
    return value or None


def label(value, field: str = "labels") -> str:
    """One label as it is stored: trimmed, inner spaces collapsed, lowercase."""
    if not isinstance(value, str):
        raise FieldProblem(field, "Each label must be a string.")
    cleaned = unicodedata.normalize("NFC", " ".join(value.split()).lower())
    if not cleaned or len(cleaned) > LABEL_LENGTH or not _label_shaped(cleaned):
        raise FieldProblem(field, f"A label is 1 to {LABEL_LENGTH} letters or digits, with spaces, dashes, "
                                  f"underscores, dots or colons between them: {_shown(value)} is not one.")
    return cleaned


def labels(values, field: str = "labels") -> list[str]:
    """A list of labels, each checked, duplicates dropped, in the order given."""
    if isinstance(values, str):
        values = split_labels(values)
    if not isinstance(values, (list, tuple)):
        raise FieldProblem(field, "A list of labels.")
    if len(values) > MAX_LABELS:
        raise FieldProblem(field, f"At most {MAX_LABELS} labels.")
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(label(value, field), None)
    return list(seen)


def _label_shaped(text: str) -> bool:
    if not (text[0].isalnum() and (text[-1].isalnum() or unicodedata.category(text[-1]).startswith("M"))):
        return False
    return all(ch.isalnum() or ch in LABEL_PUNCTUATION or unicodedata.category(ch).startswith("M") for ch in text)


def split_labels(text: str) -> list[str]:
    """The labels of one CSV cell or form field ("vip; izmir | spring-sale"), empty parts dropped."""
    return [part for part in (p.strip() for p in LABEL_SEPARATORS.split(text or "")) if part]


def _shown(value: str) -> str:
    """A value quoted for an error message, short and without control characters."""
    text = "".join(ch for ch in value if ch.isprintable())
    return repr(text if len(text) <= 40 else text[:39] + "…")
