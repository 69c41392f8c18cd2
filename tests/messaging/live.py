"""Live numbers for tests: a PhoneNumber row and the same number in the loopback Graph API,
and the rows WhatsApp's rules read."""
from __future__ import annotations

import re
import secrets
from datetime import datetime

from saas.extensions import db
from saas.messaging.models import Message, PhoneNumber, Template
from saas.crypto import encrypt_token
from saas.timeutil import utcnow

CONTACT = "15551234567"  # Sender.send's default recipient
# One send into CONTACT's open customer-service window, billed: the message and its service conversation.
BILLED_ONCE = {"messages": 1, "conversations": 1, "conversations.service": 1}


def live_number(app, graph, tenant_id: int, *, tier: str | None = "TIER_1K", waba_id: str | None = None) -> tuple:
    """A live number of the tenant, registered in the fake Graph with the same id, WABA and token.

    Returns (Meta's phone_number_id, our PhoneNumber id, waba_id, token).
    """
    phone_number_id = "1" + "".join(secrets.choice("0123456789") for _ in range(14))
    waba_id = waba_id or "2" + "".join(secrets.choice("0123456789") for _ in range(14))
    token = "EAAG" + secrets.token_urlsafe(24)
    graph.add_number(phone_number_id, waba_id=waba_id, token=token, messaging_limit_tier=tier or "TIER_1K")
    with app.app_context():
        number = PhoneNumber(tenant_id=tenant_id, phone_number_id=phone_number_id, waba_id=waba_id,
                             display_number="+1 555-020-0000", verified_name="Acme Ltd", mode="live",
                             access_token_encrypted=encrypt_token(token), messaging_limit_tier=tier)
        db.session.add(number)
        db.session.commit()
        pk = number.id
        db.session.remove()
    return phone_number_id, pk, waba_id, token


def live_number_with(app, graph, tenant_id: int, *, contacts=(CONTACT,), templates=()) -> tuple:
    """A live number of the tenant (see live_number) with each contact's customer-service window open and
    each template approved, here and in the fake Graph. Returns (phone_number_id, pk, waba_id, token)."""
    found = live_number(app, graph, tenant_id)
    for contact in contacts:
        inbound(app, tenant_id, found[1], contact)
    for name in templates:
        graph.add_template(found[2], name)
        add_template(app, tenant_id, found[2], name)
    return found


def add_template(app, tenant_id: int, waba_id: str, name: str, *, language="en_US", category="UTILITY",
                 status="APPROVED", meta_id: str | None = None) -> int:
    """A template row as a sync would have stored it."""
    with app.app_context():
        template = Template(tenant_id=tenant_id, waba_id=waba_id, name=name, language=language, category=category,
                            status=status, meta_id=meta_id or str(secrets.randbelow(10**15)),
                            components=[{"type": "BODY", "text": "Hello {{1}}"}])
        db.session.add(template)
        db.session.commit()
        template_id = template.id
        db.session.remove()
    return template_id


def inbound(app, tenant_id: int, number_pk: int, contact: str, at: datetime | None = None) -> None:
    """A message from ``contact`` to the number, received at ``at`` (now by default), with the
    customer-service window it opens, as the inbound webhook writes them."""
    from datetime import timedelta

    from saas.messaging.models import ServiceWindow

    at = at or utcnow()
    with app.app_context():
        window = db.session.get(ServiceWindow, (tenant_id, number_pk, contact))
        if window is None:
            db.session.add(ServiceWindow(tenant_id=tenant_id, phone_number_id=number_pk, contact=contact,
                                         opened_at=at, last_inbound_at=at, expires_at=at + timedelta(hours=24)))
        elif at > window.last_inbound_at:
            window.last_inbound_at, window.expires_at = at, at + timedelta(hours=24)
        db.session.add(Message(tenant_id=tenant_id, phone_number_id=number_pk, direction="in", wa_id=contact,
                               type="text", body_summary="hi", status="received",
                               wa_message_id="wamid.in" + secrets.token_hex(12), created_at=at, updated_at=at))
        db.session.commit()
        db.session.remove()


def template_payload(to: str, name: str, language: str = "en_US") -> dict:
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": language}}}


def text_payload(to: str, body: str = "hello") -> dict:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}



# What we add to every live send: our message id, before the tenant's own value (if any).
OUR_MARK = re.compile(r"relay:([0-9]+)(?::(.*))?\Z", re.DOTALL)


def without_our_mark(body: dict) -> dict:
    """A body WhatsApp received, as the tenant wrote it: our message id taken out of
    biz_opaque_callback_data (every live send carries it) and the tenant's own value put back."""
    body = dict(body)
    match = OUR_MARK.match(body.pop("biz_opaque_callback_data", ""))
    assert match, "a live send carries our message id in biz_opaque_callback_data"
    if match.group(2) is not None:
        body["biz_opaque_callback_data"] = match.group(2)
    return body


def tenant_sends(graph) -> list[dict]:
    """Every send WhatsApp received, as the tenant wrote it (see without_our_mark)."""
    return [without_our_mark(body) for body in graph.sends()]
