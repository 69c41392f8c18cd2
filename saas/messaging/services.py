"""A tenant's messages: listing, reading one, and the Cloud API's mark-as-read.

Sending lives in saas.messaging.outbound.send (the SendService the factory builds).
"""
from __future__ import annotations

from sqlalchemy import update

from saas.errors import InvalidRequest
from saas.extensions import db
from saas.messaging.numbers.graph import GraphError
from saas.messaging.models import MODE_LIVE, Message
from saas.messaging.numbers.profile import access_token
from saas.messaging.numbers.phone_numbers import sending_number
from saas.tenants.scoping import get_owned, owned_query
from saas.timeutil import utcnow


def list_messages(tenant, *, limit: int, before_id: int | None = None) -> list[Message]:
    """Newest first; ``before_id`` continues from the last page's final id."""
    query = owned_query(Message, tenant)
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return list(db.session.scalars(query.order_by(Message.id.desc()).limit(limit)))


def get_message(tenant, message_id) -> Message:
    return get_owned(Message, message_id, tenant, what="message")


def mark_read(tenant, phone_number_id: str, wa_message_id: str, *, graph=None,
              typing_indicator: dict | None = None) -> None:
    """The Cloud API's mark-as-read call (with its optional typing indicator). Commits.

    A live number's call goes to WhatsApp first (never retried; its refusal is
    raised as UpstreamError), then the message is marked read here if we have
    it (its webhook may not be applied yet). A sandbox number's stays here: a
    message it did not receive is InvalidRequest.
    """
    number = sending_number(tenant, phone_number_id)
    if number.mode == MODE_LIVE:
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": wa_message_id}
        if typing_indicator is not None:
            body["typing_indicator"] = typing_indicator
        try:
            graph.post(graph.url(number.phone_number_id, "messages"),
                       access_token(number.access_token_encrypted), body)
        except GraphError as exc:
            raise exc.as_upstream() from None
    message = db.session.scalar(owned_query(Message, tenant).where(
        Message.wa_message_id == wa_message_id, Message.phone_number_id == number.id))
    if message is None:
        db.session.rollback()
        if number.mode == MODE_LIVE:
            return
        raise InvalidRequest(f"No message with id {wa_message_id!r} was received on this number.",
                             details={"message_id": ["Unknown message id."]})
    if message.direction == "in" and message.read_at is None:
        db.session.execute(update(Message).where(Message.id == message.id, Message.read_at.is_(None))
                           .values(read_at=utcnow(), status="read"))
    db.session.commit()
