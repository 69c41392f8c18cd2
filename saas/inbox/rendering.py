"""What a thread shows of a WhatsApp message: its kind and the few fields the page draws, bounded and safe.

Inbound messages arrive as WhatsApp's message objects (``message.received``), replies from the inbox as the
Cloud API bodies they were sent as; both come out as ``(type, content, text)`` where ``content`` holds only
what the page draws and ``text`` is one searchable line.
"""
from __future__ import annotations

from saas.messaging.inbound.objects import items, obj, summarise
from saas.messaging.inbound.objects import text as bounded

MEDIA = ("image", "video", "audio", "document", "sticker")
TEXT_LIMIT = 4096


def _media(body: dict) -> dict:
    return {"media_id": bounded(body.get("id"), 128), "link": bounded(body.get("link"), 2048),
            "caption": bounded(body.get("caption"), 1024), "filename": bounded(body.get("filename"), 240),
            "mime_type": bounded(body.get("mime_type"), 255)}


def _cart(body: dict) -> dict:
    lines, total, currency = [], 0.0, None
    for item in items(body.get("product_items"))[:100]:
        quantity = item.get("quantity") if isinstance(item.get("quantity"), int) else 1
        price = item.get("item_price") if isinstance(item.get("item_price"), (int, float)) else 0
        currency = bounded(item.get("currency"), 3) or currency
        total += quantity * price
        lines.append({"product": bounded(item.get("product_retailer_id"), 100) or "?", "quantity": quantity,
                      "price": price, "currency": currency})
    return {"catalog_id": bounded(body.get("catalog_id"), 64), "note": bounded(body.get("text"), 1024),
            "items": lines, "total": round(total, 2), "currency": currency}


def _contacts(cards: list) -> list[dict]:
    shown = []
    for card in cards[:10]:
        phones = [bounded(obj(phone).get("phone"), 40) for phone in items(card.get("phones"))[:5]]
        shown.append({"name": bounded(obj(card.get("name")).get("formatted_name"), 200) or "?",
                      "phones": [phone for phone in phones if phone]})
    return shown


def _interactive_reply(body: dict) -> dict:
    reply_type = body.get("type")
    reply = obj(body.get(reply_type)) if isinstance(reply_type, str) else {}
    return {"reply_type": bounded(reply_type, 30), "id": bounded(reply.get("id"), 256),
            "title": bounded(reply.get("title") or reply.get("name"), 256),
            "description": bounded(reply.get("description") or reply.get("body"), 1024)}


def inbound(message: dict) -> tuple[str, dict, str]:
    """A WhatsApp inbound message object as the thread shows it."""
    kind = message.get("type") if isinstance(message.get("type"), str) else "unsupported"
    body = obj(message.get(kind))
    if kind == "text":
        content = {"body": bounded(body.get("body"), TEXT_LIMIT) or ""}
    elif kind in MEDIA:
        content = _media(body)
    elif kind == "location":
        content = {"latitude": body.get("latitude") if isinstance(body.get("latitude"), (int, float)) else None,
                   "longitude": body.get("longitude") if isinstance(body.get("longitude"), (int, float)) else None,
                   "name": bounded(body.get("name"), 200), "address": bounded(body.get("address"), 500)}
    elif kind == "contacts":
        content = {"contacts": _contacts(items(message.get("contacts")))}
    elif kind == "interactive":
        content = _interactive_reply(body)
    elif kind == "button":
        content = {"reply_type": "button", "id": bounded(body.get("payload"), 256),
                   "title": bounded(body.get("text"), 256)}
    elif kind == "reaction":
        content = {"emoji": bounded(body.get("emoji"), 20), "message_id": bounded(body.get("message_id"), 128)}
    elif kind == "order":
        content = _cart(body)
    else:
        content = {}
    return kind[:30], content, (summarise(message) or kind)[:TEXT_LIMIT]


def outbound(payload: dict) -> tuple[str, dict, str]:
    """A Cloud API body the inbox sent, as the thread shows it."""
    kind = payload.get("type", "text")
    body = obj(payload.get(kind))
    if kind == "text":
        content = {"body": bounded(body.get("body"), TEXT_LIMIT) or ""}
        line = content["body"]
    elif kind in MEDIA:
        content = _media(body)
        line = content["caption"] or content["filename"] or kind
    elif kind == "template":
        parameters = [bounded(p.get("text"), 1024) or "" for component in items(body.get("components"))
                      for p in items(component.get("parameters"))]
        content = {"name": bounded(body.get("name"), 512),
                   "language": bounded(obj(body.get("language")).get("code"), 15), "parameters": parameters}
        line = f"template {content['name']}" + (f": {', '.join(parameters)}" if parameters else "")
    elif kind == "interactive":
        buttons = items(obj(body.get("action")).get("buttons"))
        content = {"body": bounded(obj(body.get("body")).get("text"), 1024) or "",
                   "buttons": [bounded(obj(b.get("reply")).get("title"), 20) for b in buttons]}
        line = content["body"]
    else:
        content = {}
        line = kind
    return kind[:30], content, (line or kind)[:TEXT_LIMIT]
