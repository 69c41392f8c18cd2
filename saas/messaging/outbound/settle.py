"""Settling a send: un-billed once when it did not go out, billed once when it did.

A live send WhatsApp refused (or that raised) is settled failed at once by the
send path; one left ``pending`` by a crash or a dropped connection is settled
failed by ``recover_interrupted``, which every process's housekeeping runs
once a send is older than the longest it can take (``recovery_age``). A send
whose answer comes after all, from the send itself (its accept, written late
or kept in the accept journal while the database was away) or from
WhatsApp's first status naming our message id (saas.messaging.outbound.callback_data),
is taken up: accepted with WhatsApp's id and, if recovery had un-billed it,
billed again exactly once (``take_up``).

All of it takes rows in the send path's lock order (see saas.messaging.outbound.send):
the window, then the message, then usage; ``take_up`` claims its message
first, a row nothing else locks while it has no WhatsApp id.
Each settling publishes ``send.settled`` (saas.messaging.domain_events) in its transaction,
as do the sends written settled at once (``settled_at_once``); a refusal with 131050 also
``contact.preferences_changed``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, tuple_, update

from saas.billing.pricing import METRIC_MESSAGES, Send, conversation_subject, message_subject
from saas import events
from saas.config import ConfigError
from saas.database import DatabaseUnavailable, reading
from saas.messaging.outbound.accept_journal import JournalUnavailable, KeptAccept
from saas.messaging.domain_events import SEND_SETTLED, send_settled
from saas.messaging.outbound.accepts import WAIT_SECONDS, accept_send
from saas.messaging.outbound.bodies import graph_response
from saas.messaging.outbound.consent import marketing_stopped
from saas.messaging.outbound.cloud_api import LONGEST_BACKOFF
from saas.messaging.models import Conversation, Message
from saas.messaging.outbound.windows import Window, open_window
from saas.metering.services import Receipt, Usage

log = logging.getLogger(__name__)

INTERRUPTED_TITLE = "The send was interrupted before WhatsApp answered; it was not billed."
# Between two processes' clocks, and the send's own transaction before the call.
RECOVERY_MARGIN = timedelta(seconds=15)


def longest_send(config) -> timedelta:
    """The longest a live send can stay pending: every try of WhatsApp's call at its full timeouts,
    the waits between tries, then its accept waiting for its group and retrying the database."""
    retries = config["WHATSAPP_SEND_RETRIES"]
    call = config["WHATSAPP_CONNECT_TIMEOUT_SECONDS"] + config["WHATSAPP_TIMEOUT_SECONDS"]
    waits = retries * max(config["WHATSAPP_RETRY_AFTER_MAX_SECONDS"], LONGEST_BACKOFF)
    accept = WAIT_SECONDS + config["DATABASE_RETRY_SECONDS"]
    return timedelta(seconds=(retries + 1) * call + waits + accept)


def recovery_age(config) -> timedelta:
    """How old a pending send must be before recovery settles it: RECOVER_SENDS_AFTER_SECONDS, or
    when unset the longest send plus a margin. ConfigError when it is set shorter than the longest
    send, since recovery would then settle, as failed, sends still waiting on WhatsApp."""
    longest = longest_send(config)
    configured = config.get("RECOVER_SENDS_AFTER_SECONDS")
    if configured is None:
        return longest + RECOVERY_MARGIN
    if timedelta(seconds=configured) < longest:
        raise ConfigError(
            f"RECOVER_SENDS_AFTER_SECONDS={configured:g} is shorter than the longest a live send can take "
            f"({longest.total_seconds():g} s: {config['WHATSAPP_SEND_RETRIES'] + 1} tries of "
            "WHATSAPP_CONNECT_TIMEOUT_SECONDS + WHATSAPP_TIMEOUT_SECONDS, the waits between them, and the accept's "
            "DATABASE_RETRY_SECONDS); recovery would settle sends still waiting on WhatsApp. Raise it or leave "
            "it unset to derive it.")
    return timedelta(seconds=configured)


# Recovery's age for a service built without one: derived from the default settings.
DEFAULT_RECOVERY = longest_send({
    "WHATSAPP_SEND_RETRIES": 2, "WHATSAPP_CONNECT_TIMEOUT_SECONDS": 3.05, "WHATSAPP_TIMEOUT_SECONDS": 20.0,
    "WHATSAPP_RETRY_AFTER_MAX_SECONDS": 2.0, "DATABASE_RETRY_SECONDS": 5.0}) + RECOVERY_MARGIN


class Settling:
    """Settling for SendService (its ``session``, ``metering``, ``clock``, ``group_accepts``,
    ``journal``, ``interrupted_after`` and ``_reconnecting``)."""

    def settle_refused(self, tenant_id: int, message_id: int, error_code: int | None, error_title: str | None,
                       error_details: str | None) -> None:
        """Un-bill a send WhatsApp refused; with the database away, recovery settles it the same way later."""
        try:
            self._reconnecting(lambda: self.settle_failed(tenant_id, message_id, error_code, error_title,
                                                          error_details=error_details))
        except DatabaseUnavailable:
            log.error("refused send %s left pending for recovery: the database is unreachable", message_id)

    def record_accept(self, accept: KeptAccept) -> None:
        """Record WhatsApp's acceptance: in the database, tried again on new connections, else kept in
        the journal until the database is back. DatabaseUnavailable only when neither could keep it."""
        try:
            self._reconnecting(lambda: self.write_accept(accept))
            return
        except DatabaseUnavailable:
            if self.journal is None:
                raise
        try:
            self.journal.keep(accept)
        except JournalUnavailable:
            log.error("accept of message %s could not be kept anywhere", accept.message_id)
            raise DatabaseUnavailable() from None

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
            row = conn.execute(select(Message.id, Message.conversation_id, Message.period_start, Message.status,
                                      Message.category, Message.wa_id, Message.phone_number_id).where(
                Message.id == message_id, Message.tenant_id == tenant_id)).first()
            if row is None or row.status != "pending":
                session.rollback()
                return False
            window = lock_window(conn, row.conversation_id)
            now = self.clock()
            settled = conn.execute(
                update(Message).where(Message.id == message_id, Message.status == "pending")
                .values(status="failed", failed_at=now, error_code=error_code, error_title=error_title,
                        error_details=error_details, response_status=502, updated_at=now)).rowcount
            if not settled:
                session.rollback()
                return False
            take_back(conn, self.metering, tenant_id, row, window)
            if window is not None:
                release_if_unused(conn, self.metering, tenant_id, window)
            events.publish(conn, [send_settled(tenant_id, message_id, row.wa_id, "failed", error_code=error_code,
                                               error_title=error_title, category=row.category),
                                  *marketing_stopped(conn, tenant_id, row.phone_number_id, row.wa_id, error_code,
                                                     message_id=message_id, at=now)])
            events.commit(session)
        except BaseException:
            session.rollback()
            raise
        log.warning("send failed upstream", extra={"status": error_code})
        return True

    def recover_interrupted(self, *, older_than: timedelta | None = None, limit: int = 500) -> int:
        """Settle sends left ``pending`` by a crash or a dropped connection; returns how many.

        Accepts kept while the database was away are written first, so a send
        WhatsApp took is never settled as failed. Run by every process's
        housekeeping; safe to run anywhere at once, since settling is
        conditional on the message still being pending.
        """
        self.write_kept_accepts()
        cutoff = self.clock() - (self.interrupted_after if older_than is None else older_than)
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

    def write_accept(self, accept: KeptAccept) -> bool:
        """Record WhatsApp's answer to a send: accepted with its id, billed once. Commits.

        The usual case is one conditional UPDATE; a send no longer pending
        (recovery settled it as interrupted, or a status named it first) is
        taken up instead. Returns False only for a send that cannot take this
        answer (refused, or known by another id). Raises what the database raises.
        """
        if accept_send(self.session, self.group_accepts, accept, settled=self.settled_wanted(accept.tenant_id)):
            return True
        session = self.session
        try:
            taken = take_up(session.connection(), self.metering, accept.tenant_id, accept.message_id, accept.wamid,
                            accept.at, body=accept.body, message_status=accept.message_status)
            events.commit(session)
        except BaseException:
            session.rollback()
            raise
        if not taken:
            log.error("WhatsApp accepted send %s, which was settled otherwise", accept.message_id)
        return taken

    def settled_at_once(self, conn, tenant_id: int, message_id: int, wa_id: str, *, wa_message_id=None,
                        error_code=None, error_title=None, category=None) -> None:
        """``send.settled`` for a send written settled in its one transaction (``conn``; the sandbox's)."""
        events.publish(conn, [send_settled(
            tenant_id, message_id, wa_id, "failed" if wa_message_id is None else "accepted",
            wa_message_id=wa_message_id, error_code=error_code, error_title=error_title, category=category)])

    def settles_in_send(self, answer, tenant_id: int) -> bool:
        """Whether a send the transport answered first (``answer``) is written with ``send.settled``."""
        return answer is not None and self.settled_wanted(tenant_id)

    def settled_wanted(self, tenant_id: int) -> bool:
        """Whether a consumer wants ``tenant_id``'s ``send.settled`` (read in the service's session)."""
        if not events.wanted(SEND_SETTLED):
            return False
        if events.wanted_for_every_tenant(SEND_SETTLED):  # known without a connection (every send asks)
            return True
        with reading(self.session):
            return tenant_id in events.audience(self.session.connection(), SEND_SETTLED, {tenant_id})

    def write_kept_accepts(self) -> int:
        """Write the accepts kept while the database was away; how many were written."""
        if self.journal is None:
            return 0
        return self.journal.replay(self.write_accept)


def lock_window(conn, conversation_id: int | None):
    """The window row (id, category, period_start), locked, or None."""
    if conversation_id is None:
        return None
    return conn.execute(select(Conversation.id, Conversation.category, Conversation.period_start)
                        .where(Conversation.id == conversation_id).with_for_update()).first()


def take_back(conn, metering, tenant_id: int, message, window) -> None:
    """Reverse one message's usage (``message``: its id, period_start and category) in the caller's
    transaction: it leaves ``messages``, and its own billable unit (a per-message plan's) is un-billed
    unless it was decided for Stripe already."""
    category = window.category if window is not None else (message.category or "service")
    period_start = message.period_start or (window.period_start if window is not None else None)
    if period_start is not None:
        metering.reverse(conn, Receipt(Usage(tenant_id, period_start, {METRIC_MESSAGES: 1})))
        metering.unbill(conn, tenant_id, period_start, category, message_subject(message.id))


def release_if_unused(conn, metering, tenant_id: int, window) -> bool:
    """Un-bill (if its plan billed it) and close ``window`` when no message in it went out (or may still),
    unless its conversation was already decided for Stripe (then it stays billed). Whether it was released."""
    still_used = conn.execute(select(exists().where(
        Message.tenant_id == tenant_id, Message.conversation_id == window.id, Message.status != "failed"))).scalar()
    subject = conversation_subject(window.id)
    if still_used or metering.decided(conn, tenant_id, subject):
        return False
    metering.unbill(conn, tenant_id, window.period_start, window.category, subject)
    conn.execute(update(Message).where(Message.tenant_id == tenant_id, Message.conversation_id == window.id)
                 .values(conversation_id=None, opened_conversation=False))
    conn.execute(Conversation.__table__.delete().where(Conversation.id == window.id))
    return True


_UNANSWERED = (Message.id, Message.tenant_id, Message.direction, Message.status, Message.wa_message_id,
               Message.error_title, Message.conversation_id, Message.period_start, Message.category,
               Message.wa_id, Message.type, Message.created_at)


def take_up(conn, metering, tenant_id: int, message_id: int, wamid: str, at: datetime, *, went_out: bool = True,
            body: dict | None = None, message_status: str | None = None) -> bool:
    """Give a send whose answer we had not seen WhatsApp's id ``wamid``, in the caller's transaction.

    A pending send is accepted (or, when ``went_out`` is False, for a failed
    status, only named, so that the status fails and un-bills it). A send
    recovery settled as interrupted is accepted and billed again, once: in
    its window if that still stands, else the window of its contact and
    category open at the time it was sent (opened if none is). Returns True
    when the send now carries ``wamid``.
    """
    row = conn.execute(select(*_UNANSWERED).where(Message.id == message_id, Message.tenant_id == tenant_id)).first()
    if row is None or row.direction != "out":
        return False
    if row.wa_message_id is not None:
        return row.wa_message_id == wamid
    answer = {"wa_message_id": wamid, "updated_at": at}
    if went_out:
        answer.update(status="accepted", response_status=200, message_status=message_status,
                      response_body=body or graph_response(wamid, row.wa_id, row.wa_id, row.type, message_status))
    if row.status == "pending":
        named = bool(conn.execute(update(Message).where(
            Message.id == message_id, Message.status == "pending", Message.wa_message_id.is_(None))
            .values(**answer)).rowcount)
        if named:  # a send named by a failed status only is failed by that status, in this transaction
            events.publish(conn, [send_settled(tenant_id, message_id, row.wa_id, "accepted" if went_out else "failed",
                                               wa_message_id=wamid, category=row.category)])
        return named
    if not went_out or row.status != "failed" or row.error_title != INTERRUPTED_TITLE:
        return False
    # Claimed first: of two answers racing (the accept and a status), one bills it.
    claimed = conn.execute(update(Message).where(
        Message.id == message_id, Message.status == "failed", Message.wa_message_id.is_(None),
        Message.error_title == INTERRUPTED_TITLE)
        .values(error_code=None, error_title=None, error_details=None, failed_at=None, **answer)).rowcount
    if not claimed:
        return False
    window, category = _window_at_send(conn, tenant_id, row)
    conn.execute(update(Message).where(Message.id == message_id)
                 .values(conversation_id=window.id, opened_conversation=window.opened))
    # Not refusable: the message went out, and WhatsApp charges for it whatever the plan's quota says.
    metering.meter_send(conn, None, tenant_id, row.period_start or window.period_start,
                        Send(category, window.id, window.opened, message_id), refusable=False)
    events.publish(conn, [send_settled(tenant_id, message_id, row.wa_id, "accepted", wa_message_id=wamid,
                                       category=category)])
    log.warning("interrupted send %s went out after all; billed", message_id)
    return True


def _window_at_send(conn, tenant_id: int, row) -> tuple[Window, str]:
    standing = lock_window(conn, row.conversation_id)
    if standing is not None:
        return Window(standing.id, False, standing.period_start), standing.category
    category = row.category or "service"
    return open_window(conn, tenant_id, row.wa_id, category, row.created_at,
                       row.period_start or row.created_at), category


# -- what WhatsApp's failed statuses take back ---------------------------------------------------
# A message WhatsApp accepted and then reports failed is not billed: its message leaves the usage
# once, and its conversation too unless another message that went out stands in its window (or
# the conversation was already decided for Stripe). Applied in the status batch's transaction.

_GOING = ("pending", "accepted", "sent")  # what a failed status still moves (never delivered or read)


def _named(failing) -> tuple[list, list]:
    by_wamid = sorted({(u.tenant_id, u.wa_message_id) for u in failing})
    by_id = sorted({(u.tenant_id, u.sent_as) for u in failing if getattr(u, "sent_as", None) is not None})
    return by_wamid, by_id


def _of(by_wamid, by_id):
    named = tuple_(Message.tenant_id, Message.wa_message_id).in_(by_wamid)
    return or_(named, tuple_(Message.tenant_id, Message.id).in_(by_id)) if by_id else named


def lock_windows_of(conn, failing) -> None:
    """Lock the windows of the messages ``failing`` statuses name, in id order, before the batch
    locks any message (the lock order: window, then message)."""
    if not failing:
        return
    ids = select(Message.conversation_id).where(_of(*_named(failing)), Message.conversation_id.is_not(None))
    conn.execute(select(Conversation.id).where(Conversation.id.in_(ids))
                 .order_by(Conversation.id).with_for_update()).all()


def billed_and_failing(conn, failing) -> list:
    """The metered messages that ``failing`` statuses are about to move to failed, locked. Call it
    just before the failed statuses' UPDATE, in the same transaction."""
    if not failing:
        return []
    by_wamid, _ = _named(failing)
    return conn.execute(
        select(Message.id, Message.tenant_id, Message.conversation_id, Message.period_start, Message.category)
        .where(tuple_(Message.tenant_id, Message.wa_message_id).in_(by_wamid), Message.direction == "out",
               Message.period_start.is_not(None), Message.status.in_(_GOING))
        .order_by(Message.id).with_for_update()).all()


def unbill_failed(conn, metering, messages: list) -> None:
    """Take back the usage of ``messages`` (from ``billed_and_failing``, now failed), and each
    window's conversation when nothing in it went out."""
    windows = {}
    for message in messages:
        if message.conversation_id is not None and message.conversation_id not in windows:
            windows[message.conversation_id] = lock_window(conn, message.conversation_id)
        take_back(conn, metering, message.tenant_id, message, windows.get(message.conversation_id))
    tenants = {message.conversation_id: message.tenant_id for message in messages}
    for conversation_id, window in sorted(windows.items()):
        if window is not None:
            release_if_unused(conn, metering, tenants[conversation_id], window)
    if messages:
        log.info("un-billed %d messages WhatsApp reports failed", len(messages))


def take_up_named(conn, metering, updates) -> int:
    """Statuses naming (by our message id) a send whose answer we never saw: the send takes the
    status's WhatsApp id, and is billed if recovery had settled it. Returns how many were taken up."""
    named: dict[tuple[int, int], list] = {}
    for u in updates:
        if getattr(u, "sent_as", None) is not None:
            named.setdefault((u.tenant_id, u.sent_as), []).append(u)
    if not named:
        return 0
    # Nearly every status names a send that has its id already: one query finds the others.
    unanswered = conn.execute(select(Message.tenant_id, Message.id).where(
        tuple_(Message.tenant_id, Message.id).in_(sorted(named)), Message.wa_message_id.is_(None))).all()
    taken = 0
    for tenant_id, message_id in sorted(unanswered):
        statuses = named[(tenant_id, message_id)]
        wamid = statuses[0].wa_message_id
        if conn.execute(select(exists().where(Message.wa_message_id == wamid))).scalar():
            continue
        taken += take_up(conn, metering, tenant_id, message_id, wamid, min(u.at for u in statuses),
                         went_out=any(u.status != "failed" for u in statuses))
    return taken
