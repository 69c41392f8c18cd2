"""What WhatsApp's webhook objects say, read defensively: who wrote, a line about what, when.

WhatsApp signs what it sends, but its shapes change (new message types,
users known only by a user_id): nothing here raises on an unexpected shape,
and every value is cut to the column it goes in.
"""
from __future__ import annotations

import re
from datetime import datetime

from saas.timeutil import from_timestamp

SUMMARY_LENGTH = 300
# A JSON string may hold half of a surrogate pair ("\ud800"): no database stores one, and no encoder writes it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text(value, limit: int) -> str | None:
    """``value`` as a string no longer than ``limit`` (None for nothing); NULs, which PostgreSQL refuses, dropped,
    and halves of surrogate pairs, which no database stores, replaced by U+FFFD."""
    if value is None or isinstance(value, (dict, list)):
        return None
    value = str(value).replace("\x00", "")
    if not value.isascii():  # the common case skips the search
        value = LONE_SURROGATE.sub("\ufffd", value)
    if not value:
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


def ident(value, limit: int) -> str | None:
    """An identifier (a wamid, a phone number id) as given, or None: one cut short, or with a character
    replaced, would name something else."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return value if storable(value) else None


def storable(value: str) -> bool:
    """Whether every database takes ``value`` as it is: no NUL, no half of a surrogate pair."""
    return "\x00" not in value and (value.isascii() or LONE_SURROGATE.search(value) is None)


def obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def items(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def moment(value, default: datetime) -> datetime:
    """A webhook timestamp (seconds since the epoch, as a string) as naive UTC; ``default`` if it is not one."""
    try:
        seconds = int(str(value))
    except (TypeError, ValueError):
        return default
    # Year 2000 to 2200: anything else is not a time WhatsApp would send.
    if not 946_684_800 <= seconds <= 7_258_118_400:
        return default
    return from_timestamp(seconds)


def contact_for(message: dict, contacts: list[dict]) -> dict:
    """The entry of ``contacts[]`` that describes the sender of ``message``."""
    sender, sender_user = message.get("from"), message.get("from_user_id")
    for contact in contacts:
        if (sender and contact.get("wa_id") == sender) or (sender_user and contact.get("user_id") == sender_user):
            return contact
    # A message that names no sender belongs to the one contact, if there is just one.
    return contacts[0] if len(contacts) == 1 and not sender and not sender_user else {}


def contact_keys(message: dict, contact: dict) -> list[str]:
    """The keys the sender is known by, the first being the contact key: its wa_id when there
    is one, else Meta's user_id (a user with a username may share no phone number)."""
    keys = []
    for raw in (message.get("from"), contact.get("wa_id"), message.get("from_user_id"), contact.get("user_id")):
        key = ident(raw, 64) if isinstance(raw, str) else None
        if key is not None and key not in keys:
            keys.append(key)
    return keys


def summarise(message: dict) -> str:
    """A line about an inbound message of any type, for lists and the portal."""
    kind = message.get("type")
    body = obj(message.get(kind)) if isinstance(kind, str) else {}
    line: object = None
    if kind == "text":
        line = body.get("body")
    elif kind in ("image", "video", "document"):
        line = body.get("caption") or body.get("filename") or kind
    elif kind == "audio":
        line = "voice message" if body.get("voice") else "audio"
    elif kind == "sticker":
        line = "animated sticker" if body.get("animated") else "sticker"
    elif kind == "location":
        line = body.get("name") or body.get("address") or f"{body.get('latitude')},{body.get('longitude')}"
    elif kind == "contacts":
        cards = items(message.get("contacts"))
        names = [obj(card.get("name")).get("formatted_name") or "?" for card in cards]
        line = "contact " + ", ".join(str(name) for name in names) if names else "contacts"
    elif kind == "interactive":
        reply_type = body.get("type")
        reply = obj(body.get(reply_type)) if isinstance(reply_type, str) else {}
        if reply_type == "nfm_reply":
            line = f"flow reply {reply.get('name') or ''}".strip() + (f": {reply['body']}" if reply.get("body") else "")
        else:
            line = reply.get("title") or reply.get("id") or f"interactive {reply_type}"
    elif kind == "button":
        line = body.get("text") or body.get("payload")
    elif kind == "reaction":
        emoji = body.get("emoji")
        line = f"reaction {emoji}" if emoji else "reaction removed"
    elif kind == "order":
        products = items(body.get("product_items"))
        count = sum(_quantity(p.get("quantity")) for p in products)
        line = f"order of {count} item{'s' if count != 1 else ''}" + (f": {body['text']}" if body.get("text") else "")
    elif kind == "system":
        line = body.get("body") or body.get("type") or "system message"
    elif kind == "unsupported":
        error = next(iter(items(message.get("errors"))), {})
        line = "unsupported message" + (f": {error['title']}" if error.get("title") else "")
    if line is None or line == "":
        line = kind if isinstance(kind, str) else "message"
    return text(line, SUMMARY_LENGTH) or "message"


def _quantity(value) -> int:
    """An order line's quantity, or 0: Meta sends a small whole number; anything else counts for nothing."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if 0 <= value < 10**6 else 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        return int(value)
    return 0


def first_error(status: dict) -> dict:
    """The first of a failed status's ``errors``: code, title and details (from error_data.details)."""
    error = next(iter(items(status.get("errors"))), {})
    code = error.get("code")
    details = obj(error.get("error_data")).get("details") or error.get("message")
    return {"code": code if isinstance(code, int) and -2**31 <= code < 2**31 else None,
            "title": text(error.get("title"), 300),
            "details": text(details, 500)}


def charge(status: dict) -> dict:
    """The status's conversation and pricing objects as Message columns (absent ones None)."""
    conversation, pricing = obj(status.get("conversation")), obj(status.get("pricing"))
    expires = conversation.get("expiration_timestamp")
    billable = pricing.get("billable")
    return {
        "wa_conversation_id": text(conversation.get("id"), 128),
        "wa_conversation_origin": text(obj(conversation.get("origin")).get("type"), 40),
        "wa_conversation_expires_at": moment(expires, None) if expires is not None else None,
        "pricing_billable": billable if isinstance(billable, bool) else None,
        "pricing_model": text(pricing.get("pricing_model"), 20),
        "pricing_category": text(pricing.get("category"), 40),
        "pricing_type": text(pricing.get("type"), 40),
    }
