"""What a send's body says: its conversation category, a summary, its hash, the Cloud API's answer."""
from __future__ import annotations

import hashlib
import json

from saas.messaging.outbound.types import TYPES


def category_for(payload: dict, template=None) -> str:
    """The conversation category a send opens.

    Free-form messages are customer-service replies. A template is metered in
    its own category (``template``: its TemplateTerms, from the WABA's
    templates or the sandbox's); marketing, the category Meta applies when
    unsure, when it is not known.
    """
    if not TYPES[payload["type"]].template:
        return "service"
    return template.metering_category if template is not None else "marketing"


def summarise(payload: dict) -> str:
    kind = payload["type"]
    body = payload.get(kind) or {}
    if kind == "text":
        text = body.get("body", "")
    elif kind == "template":
        text = f"template {body.get('name')} ({(body.get('language') or {}).get('code')})"
    elif TYPES[kind].media:
        text = body.get("caption") or body.get("filename") or body.get("link") or body.get("id") or kind
    elif kind == "interactive":
        text = ((body.get("body") or {}).get("text")) or f"interactive {body.get('type')}"
    elif kind == "reaction":
        text = f"reaction {body.get('emoji', '')}"
    elif kind == "location":
        text = body.get("name") or f"{body.get('latitude')},{body.get('longitude')}"
    else:
        text = kind
    text = str(text)
    return text if len(text) <= 300 else text[:297] + "..."


def request_hash(phone_number_id: str, payload: dict) -> str:
    """The Idempotency-Key's fingerprint of a send: the number and the body as it is forwarded to
    WhatsApp (fields we do not read included), so a retry that would send anything else is another
    request (409), and one that would send the same is the same (replayed)."""
    canonical = json.dumps({"number": phone_number_id, "payload": payload}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def graph_response(wa_message_id: str, wa_id: str, to_input: str, message_type: str,
                   message_status: str | None = None) -> dict:
    """The Cloud API's success body for a send (a template's ``message_status`` as WhatsApp gave it)."""
    entry = {"id": wa_message_id}
    if message_status is not None:
        entry["message_status"] = message_status
    elif message_type == "template":
        entry["message_status"] = "accepted"
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to_input, "wa_id": wa_id}],
        "messages": [entry],
    }
