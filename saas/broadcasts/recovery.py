"""Claims a dead worker left: recipients still ``sending`` long after their claim.

What happened to each is read from the messages the send service wrote, which it writes (and
commits) before it calls WhatsApp: a message to the recipient from the broadcast's number made after
the claim. None: the send never reached WhatsApp, and the recipient is queued again. One still
``pending``, or settled failed as interrupted (saas.messaging.outbound.settle): it may have left, so
it is ``unknown``, never sent again by itself (its status webhook settles it). One with WhatsApp's
answer: sent, or failed with WhatsApp's code.

A claim is abandoned only once it is older than the longest a batch can take
(BROADCAST_RECOVER_AFTER_SECONDS): a live worker's claim is never taken from it.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from saas.broadcasts.engine import postgres, record
from saas.broadcasts.models import FAILED, QUEUED, SENDING, SENT, UNKNOWN, Broadcast, BroadcastRecipient
from saas.broadcasts.outcomes import Outcome
from saas.messaging.models import Message
from saas.messaging.outbound.settle import INTERRUPTED_TITLE
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

# Between the worker's clock at the claim and the send service's at the message row (one process: none).
CLOCK_MARGIN = timedelta(seconds=5)
WENT_OUT = ("accepted", "sent", "delivered", "read")


def recover(session, *, older_than: timedelta, limit: int = 500, now=None) -> int:
    """Settle up to ``limit`` abandoned claims; how many. Commits. Safe in several processes at once."""
    now = now or utcnow()
    query = (select(BroadcastRecipient, Broadcast.phone_number_id)
             .join(Broadcast, Broadcast.id == BroadcastRecipient.broadcast_id)
             .where(BroadcastRecipient.status == SENDING, BroadcastRecipient.claimed_at < now - older_than)
             .order_by(BroadcastRecipient.claimed_at).limit(limit))
    if postgres(session):
        query = query.with_for_update(of=BroadcastRecipient, skip_locked=True)
    try:
        found = session.execute(query).all()
        outcomes = [(row.id, _outcome(session, row, number_pk)) for row, number_pk in found]
    except BaseException:
        session.rollback()
        raise
    if outcomes:
        record(session, outcomes, now)
        log.warning("settled %d broadcast recipients a stopped worker left sending", len(outcomes))
    else:
        session.commit()
    return len(outcomes)


def _outcome(session, row, number_pk: int) -> Outcome:
    message = session.execute(
        select(Message.id, Message.status, Message.wa_message_id, Message.error_code, Message.error_title)
        .where(Message.tenant_id == row.tenant_id, Message.phone_number_id == number_pk, Message.wa_id == row.wa_id,
               Message.direction == "out", Message.created_at >= row.claimed_at - CLOCK_MARGIN)
        .order_by(Message.id).limit(1)).first()
    if message is None:
        return Outcome(QUEUED, row.error_code, row.error_title)
    if message.status in WENT_OUT:
        return Outcome(SENT, message_id=message.id, wa_message_id=message.wa_message_id)
    if message.status == "failed" and message.error_title != INTERRUPTED_TITLE:
        return Outcome(FAILED, str(message.error_code) if message.error_code is not None else None,
                       message.error_title, message_id=message.id)
    return Outcome(UNKNOWN, "131000", "The send was interrupted; WhatsApp may or may not have it.",
                   message_id=message.id)
