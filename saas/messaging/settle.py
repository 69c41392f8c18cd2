"""Settling a send that did not go out: failed, and its usage taken back, once.

A live send WhatsApp refused (or that raised) is settled at once by the send
path; one left ``pending`` by a crash or a dropped connection is settled by
``recover_interrupted``, which every process's housekeeping runs. Both take
rows in the send path's lock order (see saas.messaging.send): the window,
then the message, then usage.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, select, update

from saas.messaging.models import Conversation, Message
from saas.metering.services import Receipt, Usage

log = logging.getLogger(__name__)

# A send still pending this long was interrupted: no request runs this long
# (the transport's own timeouts end it well before).
INTERRUPTED_AFTER = timedelta(seconds=30)
INTERRUPTED_TITLE = "The send was interrupted before WhatsApp answered; it was not billed."


class Settling:
    """Un-billing for SendService (its ``session``, ``metering`` and ``clock``)."""

    def settle_failed(self, tenant_id: int, message_id: int, error_code: int | None, error_title: str | None,
                      *, error_details: str | None = None) -> bool:
        """Mark a pending send failed and take its usage back, once. Commits.

        The window's conversation is un-billed (and the window closed) when
        no other send that may still go out stands in it, whichever send
        opened it. Returns False when the message was no longer pending.
        """
        session = self.session
        try:
            conn = session.connection()
            row = conn.execute(select(Message.conversation_id, Message.period_start, Message.status).where(
                Message.id == message_id, Message.tenant_id == tenant_id)).first()
            if row is None or row.status != "pending":
                session.rollback()
                return False
            window = None
            if row.conversation_id is not None:
                window = conn.execute(
                    select(Conversation.id, Conversation.category, Conversation.period_start)
                    .where(Conversation.id == row.conversation_id).with_for_update()).first()
            now = self.clock()
            settled = conn.execute(
                update(Message).where(Message.id == message_id, Message.status == "pending")
                .values(status="failed", failed_at=now, error_code=error_code, error_title=error_title,
                        error_details=error_details, response_status=502, updated_at=now)).rowcount
            if not settled:
                session.rollback()
                return False
            if window is not None:
                unbill = not conn.execute(select(exists().where(
                    Message.tenant_id == tenant_id, Message.conversation_id == window.id,
                    Message.status != "failed"))).scalar()
                usage = Usage(tenant_id, row.period_start or window.period_start, window.category, messages=1)
                self.metering.reverse(conn, Receipt(usage))
                if unbill:
                    self.metering.reverse(conn, Receipt(
                        Usage(tenant_id, window.period_start, window.category, messages=0, conversations=1),
                        subject=f"conversation:{window.id}"))
                    conn.execute(update(Message).where(Message.conversation_id == window.id)
                                 .values(conversation_id=None, opened_conversation=False))
                    conn.execute(Conversation.__table__.delete().where(Conversation.id == window.id))
            session.commit()
        except BaseException:
            session.rollback()
            raise
        log.warning("send failed upstream", extra={"status": error_code})
        return True

    def recover_interrupted(self, *, older_than: timedelta = INTERRUPTED_AFTER, limit: int = 500) -> int:
        """Settle sends left ``pending`` by a crash or a dropped connection; returns how many.

        Run by every process's housekeeping; safe to run anywhere at once,
        since settling is conditional on the message still being pending.
        """
        cutoff = self.clock() - older_than
        stuck = self.session.execute(
            select(Message.tenant_id, Message.id)
            .where(Message.status == "pending", Message.created_at < cutoff)
            .order_by(Message.created_at).limit(limit)).all()
        self.session.rollback()
        settled = 0
        for tenant_id, message_id in stuck:
            settled += self.settle_failed(tenant_id, message_id, 131000, INTERRUPTED_TITLE)
        if settled:
            log.warning("settled %d interrupted sends", settled)
        return settled
