"""Sending a message: the one path every sender (API, later broadcasts and automations) takes.

A send is one short transaction before the transport is called (the window
found or opened, the message row written as ``pending``, its usage metered;
see saas.messaging.outbound.windows) and one UPDATE after it (``accepted`` with
WhatsApp's id, or ``failed`` and un-billed). The sandbox, which sends
nothing, is asked first and its answer written in that one transaction. No connection is held while the transport works.
On PostgreSQL the transaction is shared with the process's other sends of the moment, and so is the read
of the contacts' windows for WhatsApp's rules (saas.messaging.outbound.grouped).
Before any of it, WhatsApp's own rules are checked (saas.messaging.outbound.rules):
a send Meta would refuse is refused here, with Meta's code, for every
transport, and nothing is sent, written or billed; so is a marketing template
the contact did not consent to (saas.messaging.outbound.consent). A send that is
interrupted between the two (a worker killed) stays ``pending`` until
``recover_interrupted`` settles it: failed and un-billed, since the client
never got an answer, unless its answer turns up later (see
saas.messaging.outbound.settle). Each database step meeting a dropped connection is
tried again on a new one (saas.database.Reconnecting); once WhatsApp has
taken a message, an accept the database cannot take is kept in the accept
journal (saas.messaging.outbound.accept_journal) and the tenant still gets the answer.

Lock order, for every path that writes these rows (see saas.metering too):
the number's messaging-limit lock (business-initiated sends only), the
conversation window, then the message, then the tenant's quota lock
(capped opens only), then usage entries and records.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from saas import events
from saas.database import Reconnecting, end_transaction
from saas.database import single_statement as _single_statement
from saas.errors import EmailNotVerified, IdempotencyConflict, TenantSuspended, UpstreamError
from saas.messaging.outbound import callback_data
from saas.messaging.outbound.accept_journal import KeptAccept
from saas.messaging.outbound.accepts import GroupAccepts
from saas.messaging.outbound.batch import PENDING, SendingMany
from saas.messaging.outbound.bodies import graph_response, request_hash, summarise
from saas.messaging.outbound.grouped import GroupCommit, SendingGrouped
from saas.messaging.outbound.consent import MARKETING, AllowEverySend, ConsentCheck, marketing_stopped
from saas.messaging.outbound.payloads import forwarded_body
from saas.messaging.domain_events import send_settled
from saas.messaging.models import MODE_LIVE, Message
from saas.outbox import STREAM_LENGTH
from saas.messaging.outbound.refusals import check_feature, refusal
from saas.messaging.outbound.rules import Admission, enforce_messaging_limit
from saas.messaging.outbound.settle import DEFAULT_RECOVERY, Settling
from saas.messaging.outbound.transports import SendResult
from saas.messaging.outbound.windows import INSERT_MESSAGE, ONE_STATEMENT_SEND, SETTLED_EVENT, WINDOW, open_window
from saas.billing.pricing import Send
from saas.metering.services import current_period
from saas.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendOutcome:
    message_id: int
    wa_message_id: str
    response_body: dict
    replayed: bool


class SendService(Settling, SendingMany, SendingGrouped):
    """Sends messages; built once per app by the factory with its collaborators, and usable from
    anywhere (a request, a worker, a command, a plain function): it reaches nothing else.

    ``session`` is the scoped session every step works in (saas.database.AppSessions),
    ``numbers`` finds the sending number (saas.messaging.numbers.phone_numbers.SendingNumbers),
    ``accounts`` answers for the tenant's rights and verification (saas.messaging.outbound.accounts),
    ``transports`` chooses a transport per number (the Cloud API's holds the token cipher),
    ``metering`` is the metering port, ``enqueue(path, *args)`` the queue that runs
    follow-ups after the answer, ``rules`` are WhatsApp's (saas.messaging.outbound.rules: the
    templates a number may send, and the pair-rate store every process shares), ``clock``
    says what time it is, ``reconnecting`` how database steps are retried on a new
    connection, ``journal`` where accepts wait while the database is away (None: nowhere,
    the send answers 503), ``interrupted_after`` how old a pending send is before recovery
    settles it (saas.messaging.outbound.settle.recovery_age), ``concurrency`` how many
    calls to WhatsApp one ``send_many`` makes at once, and ``consent`` whether a marketing
    template may go to a contact (saas.messaging.outbound.consent; None: every send may).
    """

    def __init__(self, *, session, numbers, accounts, transports, metering, enqueue, rules, clock=utcnow,
                 reconnecting: Reconnecting | None = None, journal=None, interrupted_after: timedelta | None = None,
                 concurrency: int = 16, consent: ConsentCheck | None = None):
        self.session = session
        self.numbers = numbers
        self.accounts = accounts
        self.transports = transports
        self.metering = metering
        self.enqueue = enqueue
        self.rules = rules
        self.clock = clock
        self.reconnecting = reconnecting or Reconnecting()
        self.concurrency = concurrency
        self.journal = journal
        self.interrupted_after = interrupted_after or DEFAULT_RECOVERY
        self.consent = consent if consent is not None else AllowEverySend()
        # Live sends' accepts, written in groups on PostgreSQL (saas.messaging.outbound.accepts).
        self.group_accepts = GroupAccepts()
        # Answered sends' transactions, written in groups on PostgreSQL (saas.messaging.outbound.grouped).
        self.group_sends = GroupCommit(self.write_send_group)
        self.window_reads = GroupCommit(self.read_window_group)

    def send(self, tenant, rights, phone_number_id: str, payload: dict, *, idempotency_key: str | None = None,
             to_input: str | None = None, upstream: dict | None = None) -> SendOutcome:
        """Send one validated Cloud API message body from the tenant's number ``phone_number_id``.

        ``payload`` is the body as validated (saas.messaging.outbound.payloads: the
        recipient normalised, only the type's own object); ``upstream`` the tenant's body
        as it came, which a live number forwards to WhatsApp (so fields we do not read
        travel unchanged), with the normalised recipient.

        Metered exactly once, before the transport is called; a send the
        transport refuses (or that raises) is un-billed. With an
        Idempotency-Key the first result is returned again for the same body.
        Raises TenantSuspended, NotFound (another tenant's number, or none), EmailNotVerified (a live
        number while the tenant's owner has not verified their email),
        FeatureNotInPlan, QuotaExceeded, PaymentRequired (what the plan paid for allows, while its
        rights are withheld for non-payment), one of WhatsApp's rules (saas.errors.WhatsAppRule:
        outside the customer-service window, unknown or unapproved template, pair rate,
        messaging limit; nothing sent or billed), ConsentRequired or OptedOut (a marketing
        template without the contact's opt-in for the number, or after its opt-out; nothing
        sent or billed), IdempotencyConflict or UpstreamError.
        """
        try:
            return self._send(tenant, rights, phone_number_id, payload, idempotency_key, to_input, upstream)
        finally:
            end_transaction(self.session)

    def sending_number(self, tenant, rights, phone_number_id: str):
        """The number ``tenant`` sends from, or the refusal of any send from it: TenantSuspended,
        NotFound (another tenant's number, or none), EmailNotVerified (a live number, its owner's
        email not verified)."""
        if rights.suspended:
            raise TenantSuspended()
        number = self.numbers.get(tenant.id, phone_number_id)
        if number.mode == MODE_LIVE and not self.accounts.verified(tenant.id):
            raise EmailNotVerified()
        return number

    def _send(self, tenant, rights, phone_number_id, payload, idempotency_key, to_input, upstream) -> SendOutcome:
        number = self.sending_number(tenant, rights, phone_number_id)
        kind = payload["type"]
        check_feature(rights, kind)
        forwarded = forwarded_body(payload, upstream)
        # What is forwarded decides whether a retry is the same request, fields we do not read included.
        digest = request_hash(number.phone_number_id, forwarded) if idempotency_key else None
        if idempotency_key:
            earlier = self._reconnecting(lambda: self._find_by_key(tenant.id, idempotency_key))
            if earlier is not None:
                return self._replay(earlier, digest)
        admission = self._reconnecting(lambda: self._admit(tenant.id, rights, number, payload))
        transport = self.transports.for_number(number)
        if transport is None:
            raise UpstreamError("Live numbers are not enabled on this server.", graph_code=131000)

        if getattr(transport, "side_effect_free", False):
            return self._send_answer_first(tenant, rights, number, payload, transport, idempotency_key, digest,
                                           to_input, admission)

        tenant_value = forwarded.get(callback_data.FIELD)
        kept = callback_data.kept_with_us(tenant_value)
        message_id = self.meter_in_group(tenant, rights, number, payload, idempotency_key, digest, admission, lambda: (
            self._reconnecting(lambda: self._meter(tenant, rights, number, payload, idempotency_key, digest,
                                                   admission, kept_callback_data=kept))), kept_callback_data=kept)
        if isinstance(message_id, SendOutcome):
            return message_id
        # Our message id travels with the send and comes back in its statuses: a send whose answer
        # we never see (the process died while WhatsApp took it) is still found and billed.
        result = self._call(transport, number,
                            {**forwarded, callback_data.FIELD: callback_data.for_whatsapp(message_id, tenant_value)})
        if not result.ok:
            self.settle_refused(tenant.id, message_id, result.error_code, result.error_title, result.error_details)
            raise refusal(result, message_id)
        body = graph_response(result.wa_message_id, result.wa_id or payload["to"], to_input or payload["to"], kind,
                              message_status=result.message_status)
        self.record_accept(KeptAccept(tenant.id, message_id, result.wa_message_id, result.message_status,
                                      body if idempotency_key else None, self.clock()))
        return self._accepted(transport, tenant.id, message_id, result.wa_message_id, body)

    def _admit(self, tenant_id: int, rights, number, payload: dict) -> Admission:
        """WhatsApp's rules, then the contact's consent to a marketing template, in a read-only transaction
        of their own (ended before any transport works); the contact's window read with the other sends'
        of the moment where it can be (saas.messaging.outbound.grouped)."""
        windows = self.windows_in_group(tenant_id, number, payload["to"])
        admission = None if windows is None else self.rules.admit_read(windows, number, payload)
        if admission is not None and admission.category != MARKETING:
            return admission
        session = self.session
        try:
            conn = session.connection(execution_options=_single_statement(session))
            if admission is None:
                admission = self.rules.admit(conn, tenant_id, number, payload, self.clock())
            if admission.category == MARKETING:
                refused = self.consent.refusals(conn, tenant_id, number.id, [payload["to"]], rights)
                if payload["to"] in refused:
                    raise refused[payload["to"]]
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return admission

    def _send_answer_first(self, tenant, rights, number, payload, transport, idempotency_key, digest, to_input,
                           admission):
        """A transport that can have sent nothing before it answers (the sandbox) is asked first.

        Its answer is then written with the send's usage in the send's one
        statement: no pending row, no second round trip. A refusal is
        recorded as a failed message that was never metered; a send refused
        by the quota leaves nothing, as nothing left the machine.
        """
        result = self._call(transport, number, payload)
        if not result.ok:
            message_id = self._reconnecting(
                lambda: self._record_refused(tenant.id, number.id, payload, result, idempotency_key, digest))
            if isinstance(message_id, SendOutcome):
                return message_id
            raise refusal(result, message_id)
        body = graph_response(result.wa_message_id, payload["to"], to_input or payload["to"], payload["type"])
        answer = {"status": "accepted", "wa_message_id": result.wa_message_id, "response_status": 200,
                  "response_body": body if idempotency_key else None}
        message_id = self.meter_in_group(tenant, rights, number, payload, idempotency_key, digest, admission, lambda: (
            self._reconnecting(lambda: self._meter(tenant, rights, number, payload, idempotency_key, digest,
                                                   admission, answer))), answer=answer)
        if isinstance(message_id, SendOutcome):
            return message_id
        return self._accepted(transport, tenant.id, message_id, result.wa_message_id, body)

    @staticmethod
    def _call(transport, number, payload) -> SendResult:
        try:
            return transport.send(number, payload)
        except Exception:
            # Whatever broke, the send did not happen: un-bill it like any refusal.
            log.exception("transport raised")
            return SendResult(ok=False, error_code=131000, error_title="Something went wrong")

    def _accepted(self, transport, tenant_id, message_id, wa_message_id, body) -> SendOutcome:
        for path, args in getattr(transport, "follow_ups", lambda *a: [])(tenant_id, wa_message_id):
            self.enqueue(path, *args)
        return SendOutcome(message_id, wa_message_id, body, replayed=False)

    def _record_refused(self, tenant_id, number_id, payload, result, idempotency_key, digest):
        """Write a refused send as a failed message with no window and no usage. Commits."""
        session = self.session
        now = self.clock()
        try:
            message_id = session.connection().execute(INSERT_MESSAGE, {
                "tenant_id": tenant_id, "phone_number_id": number_id, "direction": "out", "wa_id": payload["to"],
                "type": payload["type"], "body_summary": summarise(payload), "status": "failed",
                "error_code": result.error_code, "error_title": result.error_title, "response_status": 502,
                "conversation_id": None, "opened_conversation": False, "period_start": None,
                "idempotency_key": idempotency_key, "request_hash": digest, "created_at": now, "updated_at": now,
                "failed_at": now}).scalar()
            conn = session.connection()
            self.settled_at_once(conn, tenant_id, message_id, payload["to"],
                                 error_code=result.error_code, error_title=result.error_title)
            events.publish(conn, marketing_stopped(conn, tenant_id, number_id, payload["to"], result.error_code,
                                                   message_id=message_id, at=now))
            events.commit(session)
        except IntegrityError:
            return self._replay_the_winner(tenant_id, idempotency_key, digest)
        except BaseException:
            session.rollback()
            raise
        log.warning("send failed upstream", extra={"status": result.error_code})
        return message_id

    def _meter(self, tenant, rights, number, payload, idempotency_key, digest, admission, answer=None,
               kept_callback_data=None):
        """The send's one transaction: messaging limit, window, message row, usage. Returns the message id.

        ``answer`` is the transport's, when it was asked first: the message is
        written accepted; otherwise pending, to be accepted or settled.
        """
        settled = self.settles_in_send(answer, tenant.id)
        answer = {**(answer or PENDING), "category": admission.category, "callback_data": kept_callback_data}
        now = self.clock()
        period = current_period(rights.subscription, now, rights.grace)
        category = admission.category
        limited = admission.business_initiated and admission.messaging_limit is not None
        session = self.session
        one_statement = (not self.metering.may_refuse(rights) and not limited
                         and session.get_bind().dialect.name == "postgresql")
        try:
            if one_statement:
                # A settled send's send.settled goes in the same statement (its message id put in there).
                event = send_settled(tenant.id, 0, payload["to"], "accepted", wa_message_id=answer["wa_message_id"],
                                     category=category) if settled else None
                message_id = self._meter_in_one_statement(
                    session, rights, tenant.id, number.id, payload, category, now, period.start, idempotency_key,
                    digest, answer, admission.business_initiated, event)
            else:
                conn = session.connection()
                if limited:
                    enforce_messaging_limit(conn, tenant.id, number.id, payload["to"], admission.messaging_limit,
                                            now)
                window = open_window(conn, tenant.id, payload["to"], category, now, period.start)
                message_id = conn.execute(INSERT_MESSAGE, {
                    "tenant_id": tenant.id, "phone_number_id": number.id, "direction": "out",
                    "wa_id": payload["to"], "type": payload["type"], "body_summary": summarise(payload),
                    "conversation_id": window.id, "opened_conversation": window.opened,
                    "period_start": period.start, "idempotency_key": idempotency_key, "request_hash": digest,
                    "business_initiated": admission.business_initiated, "created_at": now, "updated_at": now,
                    **answer}).scalar()
                # Priced, and refused past a hard cap (QuotaExceeded, PaymentRequired), by billing's policy.
                self.metering.meter_send(conn, rights, tenant.id, period.start,
                                         Send(category, window.id, window.opened, message_id))
                if settled:
                    self.settled_at_once(conn, tenant.id, message_id, payload["to"],
                                         wa_message_id=answer["wa_message_id"], category=category)
            events.commit(session)
        except IntegrityError:
            return self._replay_the_winner(tenant.id, idempotency_key, digest)
        except BaseException:
            session.rollback()
            raise
        return message_id

    def _replay_the_winner(self, tenant_id: int, idempotency_key: str | None, digest: str | None):
        """After a unique violation: another request with the same Idempotency-Key committed first.

        Called inside ``except IntegrityError``; re-raises it when no such request exists.
        """
        self.session.rollback()
        earlier = self._find_by_key(tenant_id, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return self._replay(earlier, digest)

    def _reconnecting(self, work):
        """Run ``work`` again on a new connection while the database drops or refuses connections.

        Pooled connections are not pinged before use (a round trip per
        checkout): a connection the server closed is found by using it, the
        pool is refreshed, and the step is run on a new one, within
        DATABASE_RETRIES and DATABASE_RETRY_SECONDS (then DatabaseUnavailable,
        a 503). Every step so run is safe to repeat: reads, a transaction
        that did not commit, and accepts, conditional on the send's state.
        """
        return self.reconnecting.run(self.session, work)

    def _meter_in_one_statement(self, session, rights, tenant_id, number_id, payload, category, now, period_start,
                                idempotency_key, digest, answer, business_initiated, event=None) -> int:
        params = {
            "tenant_id": tenant_id, "contact": payload["to"], "category": category, "now": now,
            "expires_at": now + WINDOW, "period_start": period_start, "phone_number_id": number_id,
            "type": payload["type"], "body_summary": summarise(payload), "idempotency_key": idempotency_key,
            "request_hash": digest, "business_initiated": business_initiated, **answer,
            "response_body": json.dumps(answer["response_body"]) if answer["response_body"] is not None else None}
        with_list = ONE_STATEMENT_SEND
        if event is not None:
            with_list += SETTLED_EVENT
            params.update(event_type=event.type, event_stream=event.stream[:STREAM_LENGTH],
                          event_payload=json.dumps(event.payload))
        conn = session.connection(execution_options=_single_statement(session))
        for _ in range(5):
            message_id = self.metering.meter_within(
                conn, rights, with_list, "metered", "SELECT id FROM message", params).scalar()
            if message_id is not None:
                if event is not None:
                    events.published([event.stream])
                return message_id
        raise RuntimeError("could not open or join a conversation window")

    def _find_by_key(self, tenant_id: int, key: str):
        row = self.session.connection().execute(
            select(Message.id, Message.status, Message.request_hash, Message.wa_message_id,
                   Message.response_body, Message.error_code, Message.error_title)
            .where(Message.tenant_id == tenant_id, Message.idempotency_key == key)).first()
        return row

    @staticmethod
    def _replay(earlier, digest: str) -> SendOutcome:
        if earlier.request_hash != digest:
            raise IdempotencyConflict(details={"message_id": earlier.id})
        if earlier.status == "pending":
            raise IdempotencyConflict("A request with this Idempotency-Key is still being processed; retry shortly.",
                                      details={"message_id": earlier.id})
        if earlier.wa_message_id is None:
            raise UpstreamError(earlier.error_title or UpstreamError.message,
                                details={"whatsapp_code": earlier.error_code, "message_id": earlier.id},
                                graph_code=earlier.error_code)
        return SendOutcome(earlier.id, earlier.wa_message_id, earlier.response_body, replayed=True)
