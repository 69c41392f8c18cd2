"""Consent's consumers of messaging's domain events (found by saas.events.discover).

- ``message.received``: a text (or a template's quick-reply button) whose whole text is one of the
  tenant's keywords (saas.contacts.consent.keywords) opts its sender out of, or back in to, marketing
  from the number it was sent to; the contact is found or made.
- ``contact.preferences_changed``: WhatsApp says the customer stopped (``stop``) or resumed
  (``resume``) marketing from the number (Meta's user_preferences webhook, or error 131050 on a send
  or in a failed status): opted out or in, source ``whatsapp``.

Each writes on the delivering connection, in its transaction. Idempotent: an event delivered again
finds the state it set (a repeat records nothing), and WhatsApp's own repeats are stale news
(saas.contacts.consent.records).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from saas import events
from saas.contacts import directory
from saas.contacts.consent import keywords, records
from saas.contacts.models import OPTED_IN, OPTED_OUT, SOURCE_INBOUND, SOURCE_KEYWORD, SOURCE_WHATSAPP
from saas.messaging.domain_events import MESSAGE_RECEIVED, PREFERENCES_CHANGED
from saas.messaging.inbound.objects import moment, obj, text
from saas.timeutil import utcnow

PREFERENCE_STATES = {"stop": OPTED_OUT, "resume": OPTED_IN}


def _on(conn) -> Session:
    """An ORM session writing on the delivering connection, in its transaction (or the savepoint an event
    delivered alone gets): it neither commits nor, when closed, rolls back what it did there."""
    return Session(bind=conn, join_transaction_mode="rollback_only")


def _said(message: dict) -> str | None:
    """What the contact wrote, for keywords: a text's body, or the text of a template's quick-reply button."""
    kind = message.get("type")
    if kind == "text":
        return obj(message.get("text")).get("body")
    if kind == "button":
        return obj(message.get("button")).get("text")
    return None


def _sender(payload: dict) -> tuple[str | None, str | None, str | None]:
    """The sender's WhatsApp id (digits) or Meta user id, and the profile name, from a message event."""
    message, contact = obj(payload.get("object")), obj(payload.get("contact"))
    parsed = directory.parse_wa_id(message.get("from") or contact.get("wa_id") or "")
    user_id = text(message.get("from_user_id") or contact.get("user_id"), 100)
    name = text(obj(contact.get("profile")).get("name"), 200)
    return (parsed.digits if parsed else None), user_id, name


def on_message(conn, delivered: list) -> None:
    """Opt out (or in) the senders of keyword messages; see the module."""
    candidates = []
    for event in delivered:
        message = obj(event.payload.get("object"))
        said = _said(message)
        if isinstance(said, str) and 0 < len(said) <= keywords.LONGEST_MESSAGE:
            candidates.append((event, message, said))
    if not candidates:
        return
    actions = keywords.actions_of(conn, {event.tenant_id for event, _, _ in candidates})
    now = utcnow()
    with _on(conn) as session:
        for event, message, said in candidates:
            action = keywords.action_for(said, actions[event.tenant_id])
            wa_id, user_id, name = _sender(event.payload)
            number_id = obj(event.payload.get("number")).get("id")
            if action is None or not (wa_id or user_id) or not isinstance(number_id, int):
                continue
            contact, _ = directory.find_or_create(session, event.tenant_id, wa_id=wa_id, user_id=user_id, name=name,
                                                  source=SOURCE_INBOUND, actor="whatsapp")
            records.record(session, event.tenant_id, contact, number_id, action, source=SOURCE_KEYWORD,
                           actor=wa_id or user_id, proof=said, at=moment(message.get("timestamp"), now),
                           detail={"wa_message_id": event.payload.get("wa_message_id")})
        session.flush()


def on_preferences(conn, delivered: list) -> None:
    """Opt out (stop) or in (resume) the customers WhatsApp names; see the module."""
    now = utcnow()
    with _on(conn) as session:
        for event in delivered:
            payload = event.payload
            state = PREFERENCE_STATES.get(payload.get("value"))
            parsed = directory.parse_wa_id(payload.get("wa_id") or "")
            number_id = obj(payload.get("number")).get("id")
            if (state is None or payload.get("category") != "marketing_messages" or parsed is None
                    or not isinstance(number_id, int)):
                continue
            contact, _ = directory.find_or_create(session, event.tenant_id, wa_id=parsed.digits,
                                                  source=SOURCE_INBOUND, actor="whatsapp")
            proof = payload.get("detail") or f"WhatsApp: marketing messages {payload.get('value')}"
            records.record(session, event.tenant_id, contact, number_id, state, source=SOURCE_WHATSAPP,
                           actor="whatsapp", proof=proof, at=moment(payload.get("timestamp"), now),
                           detail={"via": payload.get("source"), "wa_message_id": payload.get("wa_message_id")})
        session.flush()


events.subscribe(MESSAGE_RECEIVED, on_message, name="contacts.consent.keywords")
events.subscribe(PREFERENCES_CHANGED, on_preferences, name="contacts.consent.preferences")
