"""WhatsApp's webhook notifications as Meta documents them, signed as Meta signs them.

Shapes follow the Cloud API's webhook reference (messages: statuses and
inbound messages of every type; account_update, account_review_update,
phone_number_quality_update; the template fields; user_preferences). Builders return plain
dicts; ``signed(body, secret)`` gives the bytes and headers of the POST.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time

from saas.extensions import db
from saas.messaging.models import MODE_LIVE, Message, PhoneNumber
from saas.timeutil import utcnow

_seq = itertools.count(1)


def wamid(tag: str = "") -> str:
    return f"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFCRDhENTE2{next(_seq):06d}{tag}"


def now_ts(offset: int = 0) -> str:
    return str(int(time.time()) + offset)


def notification(waba_id: str, *changes: tuple[str, dict]) -> dict:
    return {"object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "changes": [{"value": value, "field": field} for field, value in changes]}]}


def messages_value(number, *, statuses=None, messages=None, contacts=None, errors=None) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "".join(c for c in number.display_number if c.isdigit()),
                          "phone_number_id": number.phone_number_id}}
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    if errors is not None:
        value["errors"] = errors
    return value


def status(message_id: str, name: str, *, recipient="16505551234", timestamp=None, category="marketing",
           charged=True, errors=None) -> dict:
    """A status object; sent and delivered carry conversation and pricing, as WhatsApp's do."""
    item = {"id": message_id, "status": name, "timestamp": timestamp or now_ts(), "recipient_id": recipient}
    if charged and name in ("sent", "delivered", "read"):
        item["conversation"] = {"id": "7a7a1e7e6c1bba7b7b8f3b1a5e0ac111", "origin": {"type": category}}
        if name == "sent":
            item["conversation"]["expiration_timestamp"] = now_ts(24 * 3600)
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category, "type": "regular"}
    if errors is not None:
        item["errors"] = errors
    return item


def failed(message_id: str, *, code=131026, title="Message undeliverable",
           details="Message Undeliverable.", recipient="16505551234") -> dict:
    return status(message_id, "failed", recipient=recipient, charged=False, errors=[{
        "code": code, "title": title, "message": title, "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}])


def contact(wa_id="16505551234", *, name="Sheena Nelson", user_id=None, username=None) -> dict:
    profile = {"name": name}
    if username:
        profile["username"] = username
    item = {"profile": profile}
    if wa_id is not None:
        item["wa_id"] = wa_id
    if user_id is not None:
        item["user_id"] = user_id
    return item


def inbound(kind: str, body: dict | list | None = None, *, sender="16505551234", user_id=None,
            message_id=None, timestamp=None, **extra) -> dict:
    """An inbound message of type ``kind`` (``body`` is the object under that type's key)."""
    item = {"id": message_id or wamid(), "timestamp": timestamp or now_ts(), "type": kind}
    if sender is not None:
        item["from"] = sender
    if user_id is not None:
        item["from_user_id"] = user_id
    if body is not None:
        item[kind] = body
    item.update(extra)
    return item


# One inbound message of every type WhatsApp documents, with the summary we expect for it.
EVERY_TYPE = [
    (inbound("text", {"body": "Does it come in another color?"}), "Does it come in another color?"),
    (inbound("image", {"caption": "The red one", "mime_type": "image/jpeg", "sha256": "a" * 44,
                       "id": "1003383421387256"}), "The red one"),
    (inbound("audio", {"mime_type": "audio/ogg; codecs=opus", "sha256": "b" * 44, "id": "1003383421387257",
                       "voice": True}), "voice message"),
    (inbound("video", {"caption": "Unboxing", "mime_type": "video/mp4", "sha256": "c" * 44,
                       "id": "1003383421387258"}), "Unboxing"),
    (inbound("document", {"filename": "invoice.pdf", "mime_type": "application/pdf", "sha256": "d" * 44,
                          "id": "1003383421387259"}), "invoice.pdf"),
    (inbound("sticker", {"mime_type": "image/webp", "sha256": "e" * 44, "id": "1003383421387260",
                         "animated": False}), "sticker"),
    (inbound("location", {"address": "1 Hacker Way, Menlo Park, CA 94025", "latitude": 37.483307,
                          "longitude": -122.148981, "name": "Philz Coffee",
                          "url": "https://philzcoffee.com"}), "Philz Coffee"),
    (inbound("contacts", [{"name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara"},
                           "phones": [{"phone": "+1 (940) 555-1234", "type": "HOME", "wa_id": "19405551234"}]}]),
     "contact Barbara J. Johnson"),
    (inbound("interactive", {"type": "button_reply", "button_reply": {"id": "cancel", "title": "Cancel"}},
             context={"from": "15550783881", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}),
     "Cancel"),
    (inbound("interactive", {"type": "list_reply", "list_reply": {"id": "priority_express",
                                                                  "title": "Express Shipping",
                                                                  "description": "Next Day to 2 Days"}}),
     "Express Shipping"),
    (inbound("interactive", {"type": "nfm_reply", "nfm_reply": {
        "name": "flow", "body": "Sent", "response_json": "{\"flow_token\": \"AQAAAAACS5FpgQ\"}"}}),
     "flow reply flow: Sent"),
    (inbound("button", {"payload": "Unsubscribe", "text": "Unsubscribe"},
             context={"from": "15550783881", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBIyRUNBNzY0QjFDRjFFOEU0MDcA"}),
     "Unsubscribe"),
    (inbound("reaction", {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
                          "emoji": "\U0001F44D"}), "reaction \U0001F44D"),
    (inbound("order", {"catalog_id": "194836987003835", "text": "Blue ones please", "product_items": [
        {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"},
        {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 25, "currency": "USD"}]}),
     "order of 3 items: Blue ones please"),
    (inbound("system", {"body": "User A changed from +1 650-555-1234 to +1 650-555-5678", "new_wa_id": "16505555678",
                        "type": "user_changed_number"}), "User A changed from +1 650-555-1234 to +1 650-555-5678"),
    (inbound("unsupported", None, errors=[{"code": 131051, "title": "Message type unknown",
                                           "message": "Message type unknown",
                                           "error_data": {"details": "Message type is currently not supported."}}],
             unsupported={"type": "edit"}), "unsupported message: Message type unknown"),
]


def account_update(phone="15550783881", event="VERIFIED_ACCOUNT") -> tuple[str, dict]:
    return "account_update", {"phone_number": phone, "event": event}


def account_review_update(decision="APPROVED") -> tuple[str, dict]:
    return "account_review_update", {"decision": decision}


def quality_update(display, event="FLAGGED", limit="TIER_2K", old="TIER_10K") -> tuple[str, dict]:
    return "phone_number_quality_update", {"display_phone_number": display, "event": event, "old_limit": old,
                                           "current_limit": limit, "max_daily_conversations_per_business": limit}


def template_status_update(event="APPROVED") -> tuple[str, dict]:
    return "message_template_status_update", {"event": event, "message_template_id": 1689556908129832,
                                              "message_template_name": "order_confirmation",
                                              "message_template_language": "en_US", "reason": "NONE"}


def template_quality_update() -> tuple[str, dict]:
    return "message_template_quality_update", {"previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
                                               "message_template_id": 1689556908129832,
                                               "message_template_name": "order_confirmation",
                                               "message_template_language": "en_US"}


def template_category_update() -> tuple[str, dict]:
    return "template_category_update", {"message_template_id": 1689556908129832,
                                        "message_template_name": "order_confirmation",
                                        "message_template_language": "en_US", "previous_category": "MARKETING",
                                        "new_category": "UTILITY"}


def preference(wa_id="16505551234", value="stop", *, timestamp=None, category="marketing_messages",
               detail=None) -> dict:
    """One entry of a user_preferences change: the user stopped or resumed marketing messages."""
    return {"wa_id": wa_id, "detail": detail or ("User requested to stop marketing messages" if value == "stop"
                                                 else "User requested to resume marketing messages"),
            "category": category, "value": value, "timestamp": timestamp or int(time.time())}


def user_preferences(number, *entries: dict, name="Sheena Nelson") -> tuple[str, dict]:
    """Meta's user_preferences field for ``number`` (each entry built by ``preference``)."""
    value = messages_value(number, contacts=[contact(e["wa_id"], name=name) for e in entries if "wa_id" in e])
    value["user_preferences"] = list(entries)
    return "user_preferences", value


def body_of(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(payload: dict | bytes, secret: str) -> tuple[bytes, dict]:
    body = payload if isinstance(payload, bytes) else body_of(payload)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


# -- rows the webhooks talk about -------------------------------------------------------------

class Number:
    """A tenant's live number as WhatsApp knows it (a snapshot safe outside the app context)."""

    def __init__(self, row: PhoneNumber):
        self.id, self.tenant_id = row.id, row.tenant_id
        self.phone_number_id, self.waba_id, self.display_number = row.phone_number_id, row.waba_id, row.display_number


def add_live_number(tenant_id: int, *, phone_number_id: str | None = None, waba_id: str = "102290129340398",
                    display: str | None = None) -> Number:
    """Give a tenant a connected number (as the numbers flow would). Commits."""
    n = next(_seq)
    row = PhoneNumber(tenant_id=tenant_id, phone_number_id=phone_number_id or f"10654035224{n:04d}",
                      waba_id=waba_id, display_number=display or f"+1 555-07{n:02d}-3881", verified_name="Acme",
                      mode=MODE_LIVE)
    db.session.add(row)
    db.session.commit()
    return Number(row)


def add_sent_message(number: Number, *, to="16505551234", status_name="accepted") -> str:
    """An outbound message accepted by WhatsApp on ``number``; its wamid. Commits."""
    message_id = wamid()
    now = utcnow()
    db.session.add(Message(tenant_id=number.tenant_id, phone_number_id=number.id, direction="out", wa_id=to,
                           type="text", body_summary="hello", wa_message_id=message_id, status=status_name,
                           created_at=now, updated_at=now))
    db.session.commit()
    return message_id
