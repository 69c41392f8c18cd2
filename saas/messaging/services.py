"""A tenant's messages: listing, reading one, and the Cloud API's mark-as-read.

Sending lives in saas.messaging.send (the SendService the factory builds).
"""
from __future__ import annotations

from sqlalchemy import update

from saas.errors import InvalidRequest
from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.numbers import sending_number
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


def mark_read(tenant, phone_number_id: str, wa_message_id: str) -> None:
    """The Cloud API's mark-as-read call, for a message this number received. Commits."""
    number = sending_number(tenant, phone_number_id)
    message = db.session.scalar(owned_query(Message, tenant).where(
        Message.wa_message_id == wa_message_id, Message.phone_number_id == number.id))
    if message is None:
        raise InvalidRequest(f"No message with id {wa_message_id!r} was received on this number.",
                             details={"message_id": ["Unknown message id."]})
    if message.direction == "in" and message.read_at is None:
        db.session.execute(update(Message).where(Message.id == message.id, Message.read_at.is_(None))
                           .values(read_at=utcnow(), status="read"))
        db.session.commit()
