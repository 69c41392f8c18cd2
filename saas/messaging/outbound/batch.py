"""Sending a batch: one sender, many recipients, each with its own message (``SendService.send_many``).

A batch takes the single send's path (saas.messaging.outbound.send) with each
step done once for the lot. The sender is checked once (suspended, its
number, a live number's verified owner); each message is validated
(saas.messaging.outbound.payloads) and gated by the plan's features;
WhatsApp's rules decide for every recipient, the contacts' windows read in
one statement, and the marketing recipients' consent is asked once for them
all (saas.messaging.outbound.consent). Then one transaction writes what
passed, in set-based statements and the single send's lock order: the
number's messaging limit counted once under its lock, the conversation
windows locked and opened (saas.messaging.outbound.windows.open_windows),
the message rows in multi-row INSERTs, then the quota decided and usage
written for the whole batch by metering (``Metering.meter_many``: each recipient priced by
billing's pricing policy as its send alone would be, after the ones before
it; one refused loses its message row, and its window when it would have
opened one).

The transport is called once per message: the sandbox, which sends nothing,
before the transaction (its answers are written in it); WhatsApp's Cloud API
after it, by a bounded pool of concurrent calls, the rows written
``pending`` first and accepted afterwards in one grouped UPDATE. So a message
is metered exactly once, before it can leave; one WhatsApp refuses is
settled failed and un-billed as a single send's is (saas.messaging.outbound.settle),
and a recipient refused before the transport is never billed at all.

Every recipient gets the result its send alone would have had: accepted
with its message id, or refused with the very error the single send raises.
One bad recipient never fails the others.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import delete

from saas import events
from saas.billing.pricing import Send
from saas.database import DatabaseUnavailable, end_transaction, insert_many, single_statement
from saas.errors import ApiError, UpstreamError
from saas.messaging.models import Conversation, Message
from saas.messaging.outbound import callback_data
from saas.messaging.outbound.accept_journal import JournalUnavailable, KeptAccept
from saas.messaging.outbound.accepts import accept_many
from saas.messaging.outbound.bodies import graph_response, summarise
from saas.messaging.outbound.consent import MARKETING, marketing_stopped
from saas.messaging.outbound.payloads import Outbound, forwarded_body, outbound_item
from saas.messaging.outbound.refusals import check_feature, refusal
from saas.messaging.outbound.rules import Admission, within_messaging_limit
from saas.messaging.outbound.transports import SendResult
from saas.messaging.outbound.windows import open_windows
from saas.metering.services import current_period

log = logging.getLogger(__name__)

# A message written before its transport answers.
PENDING = {"status": "pending", "wa_message_id": None, "response_status": None, "response_body": None}


@dataclass(frozen=True)
class Accepted:
    """A recipient whose message WhatsApp (or the sandbox) took."""

    index: int             # the item's place in the batch
    to: str                # the recipient as the item wrote it
    message_id: int
    wa_message_id: str
    response_body: dict    # the Cloud API's answer to this message
    accepted: ClassVar[bool] = True


@dataclass(frozen=True)
class Refused:
    """A recipient whose message was not sent: ``error`` is what the same send alone raises."""

    index: int
    to: str | None              # the recipient as the item wrote it (None: it named none)
    error: ApiError
    message_id: int | None = None  # the message written failed, when WhatsApp refused it
    accepted: ClassVar[bool] = False


@dataclass
class _Item:
    index: int
    message: Outbound
    admission: Admission | None = None
    answer: SendResult | None = None  # the transport's, when it was asked before the transaction
    key: str | None = None            # written on its message row (``send_many``'s ``keys``)

    @property
    def payload(self) -> dict:
        return self.message.payload


class SendingMany:
    """``send_many`` for SendService (its session, numbers, accounts, transports, rules, consent, metering,
    enqueue, clock and concurrency, and the settling it inherits)."""

    def send_many(self, tenant, phone_number_id: str, items: list, *, rights=None,
                  pool: ThreadPoolExecutor | None = None, keys: list[str] | None = None) -> list[Accepted | Refused]:
        """Send each of ``items`` (Cloud API message bodies) from the tenant's number ``phone_number_id``.

        Returns one result per item, in order: Accepted, or Refused with the
        error the item's send alone would raise (InvalidRequest, FeatureNotInPlan,
        PaymentRequired, one of WhatsApp's rules, ConsentRequired, OptedOut, QuotaExceeded,
        UpstreamError ...).
        ``rights`` default to the tenant's now. Raises, and sends nothing, only
        when the sender itself is refused: TenantSuspended, NotFound (not the
        tenant's number), EmailNotVerified, UpstreamError (live numbers are not
        enabled here). Not idempotent (see ``keys``).
        ``pool``: the caller's threads to make WhatsApp's calls on (its size bounds the calls at a time), so a
        sender of batch after batch starts its threads once; without it each call starts ``concurrency``.
        ``keys``: one Idempotency-Key per item, written on its message row (how a sender finds the rows of its
        own batch again, and how the inbox and the loop guards tell who sent them); never looked up: a key
        written before makes the batch's transaction raise IntegrityError, with nothing sent or billed.
        """
        try:
            return self._send_many(tenant, phone_number_id, items, rights, pool, keys)
        finally:
            end_transaction(self.session)

    def _send_many(self, tenant, phone_number_id, items, rights, pool, keys) -> list:
        rights = rights if rights is not None else self.accounts.rights(tenant)
        number = self.sending_number(tenant, rights, phone_number_id)
        transport = self.transports.for_number(number)
        if transport is None:
            raise UpstreamError("Live numbers are not enabled on this server.", graph_code=131000)
        results: list = [None] * len(items)
        work = _checked(items, rights, results, keys)
        if not work:
            return results
        decided = self._reconnecting(lambda: self._admit_many(tenant.id, rights, number, [i.payload for i in work]))
        passing = []
        for item, decision in zip(work, decided):
            if isinstance(decision, Admission):
                item.admission = decision
                passing.append(item)
            else:
                results[item.index] = Refused(item.index, item.message.to_input, decision)
        if getattr(transport, "side_effect_free", False):
            self._answered_first(tenant, rights, number, transport, passing, results, pool)
        else:
            self._metered_first(tenant, rights, number, transport, passing, results, pool)
        return results

    def _admit_many(self, tenant_id: int, rights, number, payloads: list[dict]) -> list:
        """WhatsApp's rules for the batch, then its marketing recipients' consent (asked once for them all),
        in a read-only transaction of their own."""
        session = self.session
        try:
            conn = session.connection(execution_options=single_statement(session))
            decided = self.rules.admit_many(conn, tenant_id, number, payloads, self.clock())
            marketing = [isinstance(d, Admission) and d.category == MARKETING for d in decided]
            asked = sorted({payload["to"] for payload, is_marketing in zip(payloads, marketing) if is_marketing})
            refused = self.consent.refusals(conn, tenant_id, number.id, asked, rights) if asked else {}
            if refused:
                decided = [refused.get(payload["to"], decision) if is_marketing else decision
                           for payload, decision, is_marketing in zip(payloads, decided, marketing)]
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return decided

    def _answered_first(self, tenant, rights, number, transport, items, results, pool) -> None:
        """The sandbox, which can have sent nothing, answers first; its answers are written with the batch."""
        for item, answer in zip(items, self._calls(transport, number, [i.payload for i in items], pool)):
            item.answer = answer
        written = self._reconnecting(lambda: self._write(tenant, rights, number, items))
        follow_ups = getattr(transport, "follow_ups", lambda *a: [])
        for item in items:
            outcome, to_input = written[item.index], item.message.to_input
            if isinstance(outcome, ApiError):
                results[item.index] = Refused(item.index, to_input, outcome)
            elif not item.answer.ok:
                results[item.index] = Refused(item.index, to_input, refusal(item.answer, outcome), outcome)
            else:
                wamid = item.answer.wa_message_id
                body = graph_response(wamid, item.payload["to"], to_input, item.payload["type"])
                results[item.index] = Accepted(item.index, to_input, outcome, wamid, body)
                for path, args in follow_ups(tenant.id, wamid):
                    self.enqueue(path, *args)

    def _metered_first(self, tenant, rights, number, transport, items, results, pool) -> None:
        """WhatsApp's Cloud API: rows written pending and metered, then the calls, then one grouped accept."""
        written = self._reconnecting(lambda: self._write(tenant, rights, number, items))
        going = []
        for item in items:
            outcome = written[item.index]
            if isinstance(outcome, ApiError):
                results[item.index] = Refused(item.index, item.message.to_input, outcome)
            else:
                going.append((item, outcome))
        answers = self._calls(transport, number, [_with_our_id(item, message_id) for item, message_id in going],
                              pool)
        accepts = []
        for (item, message_id), answer in zip(going, answers):
            to_input = item.message.to_input
            if not answer.ok:
                self.settle_refused(tenant.id, message_id, answer.error_code, answer.error_title, answer.error_details)
                results[item.index] = Refused(item.index, to_input, refusal(answer, message_id), message_id)
                continue
            body = graph_response(answer.wa_message_id, answer.wa_id or item.payload["to"], to_input,
                                  item.payload["type"], message_status=answer.message_status)
            accepts.append((item, body, KeptAccept(tenant.id, message_id, answer.wa_message_id, answer.message_status,
                                                   None, self.clock())))
        lost = self._record_accepts([accept for _, _, accept in accepts])
        for item, body, accept in accepts:
            results[item.index] = (
                Refused(item.index, item.message.to_input, DatabaseUnavailable(), accept.message_id)
                if accept.message_id in lost else
                Accepted(item.index, item.message.to_input, accept.message_id, accept.wamid, body))

    def _calls(self, transport, number, payloads: list[dict], pool=None) -> list[SendResult]:
        """The transport's answer to each payload: in turn from a transport that answers at once (the
        sandbox), else from ``pool`` or a pool of this call's of at most ``concurrency`` calls at a time."""
        instant = getattr(transport, "side_effect_free", False) and not getattr(transport, "latency", 0)
        if instant or len(payloads) < 2 or self.concurrency < 2:
            return [self._call(transport, number, payload) for payload in payloads]
        call = lambda payload: self._call(transport, number, payload)  # noqa: E731
        if pool is not None:
            return list(pool.map(call, payloads))
        with ThreadPoolExecutor(min(self.concurrency, len(payloads)), thread_name_prefix="send-many") as own:
            return list(own.map(call, payloads))

    def _write(self, tenant, rights, number, items: list[_Item]) -> dict:
        """The batch's one transaction: messaging limit, windows, message rows, quota and usage. Commits.

        Returns, by item index, the message id written or the refusal. An item
        the transport already refused is written failed, with no window and
        no usage; the others accepted (answered) or pending.
        """
        now = self.clock()
        period = current_period(rights.subscription, now, rights.grace)
        session = self.session
        decided: dict = {}
        try:
            conn = session.connection()
            going = [i for i in items if i.answer is None or i.answer.ok]
            going = self._within_messaging_limit(conn, tenant.id, number, going, now, decided)
            placed = placed_in_windows(conn, tenant.id, going, now, period.start)
            rows = [_row(tenant.id, number.id, item, now, period.start, window.id, opened)
                    for item, window, opened in placed]
            failed = [i for i in items if i.answer is not None and not i.answer.ok]
            rows += [_failed_row(tenant.id, number.id, item, now) for item in failed]
            ids = [row.id for row in insert_many(conn, Message.__table__, rows, returning=("id",))]
            written = dict(zip([item.index for item, _, _ in placed] + [item.index for item in failed], ids))
            self._within_quota(conn, tenant.id, rights, period.start, placed, written, decided)
            events.publish(conn, [event for item in failed for event in marketing_stopped(
                conn, tenant.id, number.id, item.payload["to"], item.answer.error_code,
                message_id=written[item.index], at=now)])
            events.commit(session)
        except BaseException:
            session.rollback()
            raise
        decided.update(written)
        return decided

    @staticmethod
    def _within_messaging_limit(conn, tenant_id: int, number, items: list[_Item], now, decided: dict) -> list:
        limited = [i for i in items if i.admission.business_initiated and i.admission.messaging_limit is not None]
        if not limited:
            return items
        refused = within_messaging_limit(conn, tenant_id, number.id, [i.payload["to"] for i in limited],
                                         limited[0].admission.messaging_limit, now)
        for position, error in refused.items():
            decided[limited[position].index] = error
        return [item for item in items if item.index not in decided]

    def _within_quota(self, conn, tenant_id: int, rights, period_start, placed: list, written: dict,
                      decided: dict) -> None:
        """Metering's decision for each message written (``written``: item index -> message id), priced as
        its send alone would be. A refused one's message row is deleted, and so is the window its
        refusal left unopened, with its usage unwritten; its refusal goes into ``decided``."""
        sends = [Send(item.admission.category, window.id, opened, written[item.index])
                 for item, window, opened in placed]
        outcomes = self.metering.meter_many(conn, rights, tenant_id, period_start, sends)
        refused, unused = [], []
        for (item, _, _), send, outcome in zip(placed, sends, outcomes):
            if isinstance(outcome, ApiError):
                decided[item.index] = outcome
                refused.append(written.pop(item.index))
                if send.opened:
                    unused.append(send.conversation_id)
        if refused:
            conn.execute(delete(Message).where(Message.id.in_(refused)))
        if unused:
            conn.execute(delete(Conversation).where(Conversation.id.in_(unused)))

    def _record_accepts(self, accepts: list[KeptAccept]) -> set[int]:
        """Write the batch's accepts in one grouped UPDATE; one no longer pending is taken up as a single
        send's would be. With the database away they are kept in the journal. Returns the message ids
        kept nowhere."""
        try:
            written = self._reconnecting(lambda: accept_many(self.session, accepts, self.clock()))
        except DatabaseUnavailable:
            return self._journal(accepts)
        lost = set()
        for accept in accepts:
            if accept.message_id in written:
                continue
            try:
                self.record_accept(accept)
            except DatabaseUnavailable:
                lost.add(accept.message_id)
        return lost

    def _journal(self, accepts: list[KeptAccept]) -> set[int]:
        if self.journal is None:
            return {accept.message_id for accept in accepts}
        lost = set()
        for accept in accepts:
            try:
                self.journal.keep(accept)
            except JournalUnavailable:
                log.error("accept of message %s could not be kept anywhere", accept.message_id)
                lost.add(accept.message_id)
        return lost


def _checked(items: list, rights, results: list, keys: list | None = None) -> list[_Item]:
    """Each item validated and allowed by the plan; the refused ones' results set."""
    work = []
    for index, item in enumerate(items):
        try:
            message = outbound_item(item)
            check_feature(rights, message.payload["type"])
        except ApiError as exc:
            written = item.get("to") if isinstance(item, dict) else None
            results[index] = Refused(index, written if isinstance(written, str) else None, exc)
            continue
        work.append(_Item(index, message, key=keys[index] if keys is not None else None))
    return work


def placed_in_windows(conn, tenant_id: int, items: list[_Item], now, period_start) -> list:
    """The windows the items go in, opened or joined (saas.messaging.outbound.windows.open_windows):
    (item, window, opened) in the batch's order, ``opened`` for the first item of a window it opens."""
    keys = [(item.payload["to"], item.admission.category) for item in items]
    windows = open_windows(conn, tenant_id, keys, now, period_start)
    seen, placed = set(), []
    for item, key in zip(items, keys):
        window = windows[key]
        placed.append((item, window, window.opened and key not in seen))
        seen.add(key)
    return placed


def _with_our_id(item: _Item, message_id: int) -> dict:
    """What a live number sends: the tenant's body, with our message id beside its callback data."""
    forwarded = forwarded_body(item.payload, item.message.upstream)
    tenant_value = forwarded.get(callback_data.FIELD)
    return {**forwarded, callback_data.FIELD: callback_data.for_whatsapp(message_id, tenant_value)}


def _row(tenant_id: int, number_pk: int, item: _Item, now, period_start, conversation_id: int, opened: bool) -> dict:
    payload, answer = item.payload, item.answer
    state = PENDING if answer is None else {"status": "accepted", "wa_message_id": answer.wa_message_id,
                                            "response_status": 200, "response_body": None}
    kept = None
    if answer is None:
        kept = callback_data.kept_with_us(forwarded_body(payload, item.message.upstream).get(callback_data.FIELD))
    return {"tenant_id": tenant_id, "phone_number_id": number_pk, "direction": "out", "wa_id": payload["to"],
            "type": payload["type"], "body_summary": summarise(payload), **state, "conversation_id": conversation_id,
            "opened_conversation": opened, "period_start": period_start, "idempotency_key": item.key,
            "request_hash": None, "business_initiated": item.admission.business_initiated,
            "category": item.admission.category, "callback_data": kept, "error_code": None, "error_title": None,
            "failed_at": None, "created_at": now, "updated_at": now}


def _failed_row(tenant_id: int, number_pk: int, item: _Item, now) -> dict:
    """A send the sandbox refused: failed, with no window and no usage (as the single send writes it)."""
    payload, answer = item.payload, item.answer
    return {"tenant_id": tenant_id, "phone_number_id": number_pk, "direction": "out", "wa_id": payload["to"],
            "type": payload["type"], "body_summary": summarise(payload), "status": "failed", "wa_message_id": None,
            "response_status": 502, "response_body": None, "conversation_id": None, "opened_conversation": False,
            "period_start": None, "idempotency_key": item.key, "request_hash": None, "business_initiated": False,
            "category": None, "callback_data": None, "error_code": answer.error_code,
            "error_title": answer.error_title, "failed_at": now, "created_at": now, "updated_at": now}
