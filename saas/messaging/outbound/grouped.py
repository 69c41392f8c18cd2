"""Group commit of sends: one transaction for the sends that arrive together in one process (the sandbox's
written accepted with its answer, a live number's pending before WhatsApp is called); and one read of their
contacts' windows for WhatsApp's rules.

Under load many sends of a process (its greenlets or threads) reach their
transaction at about the same time. Instead of one transaction each, the
first becomes the writer and writes its own send together with every send
waiting at that moment, in one transaction of set-based statements, the
way a batch is written (saas.messaging.outbound.batch): the windows of each
tenant locked and opened in key order (tenants in id order), the message
rows in one INSERT, then each tenant's quota decided and usage written by
``Metering.meter_many`` (each send priced and admitted exactly as alone,
after the ones before it, under the tenant's quota lock), then the
``send.settled`` events. The others wait for that commit: each request
still answers only once its own rows are committed. Sends that arrive while
a group is written are written by the next writer, one of themselves, so
nobody waits for more than one transaction and no delay is added when the
process is idle (a lone send is written as it always was).

The customer-service windows WhatsApp's rules read before any send
(saas.messaging.outbound.rules) are read the same way: the first send to
ask reads them for every send of the same number waiting then, in one
statement (``ContactWindows.read``, as a batch reads them), and each send
decides alone from the window so read, as from its own read.

PostgreSQL only; elsewhere (SQLite, whose writers are serialised anyway)
each send is its own transaction. A group whose transaction fails (a
repeated Idempotency-Key, a dropped connection) is written again one send
at a time by each of its members, on the single send's path; a send over
its number's messaging limit is never grouped.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from saas import events
from saas.database import insert_many, single_statement
from saas.errors import ApiError
from saas.messaging.domain_events import send_settled
from saas.messaging.models import Message
from saas.messaging.outbound.accepts import Writers
from saas.messaging.outbound.batch import PENDING, placed_in_windows
from saas.messaging.outbound.bodies import summarise
from saas.messaging.outbound.rules import ContactWindows
from saas.metering.services import current_period

log = logging.getLogger(__name__)

# A member waits this long at most for a writer to take it up before writing its send alone.
WAIT_SECONDS = 10.0


@dataclass(eq=False)
class GroupedSend:
    """One send waiting for its group: its message row (less window and time), and what it is metered as."""

    tenant_id: int
    rights: object
    period_start: datetime
    payload: dict
    admission: object                 # saas.messaging.outbound.rules.Admission
    row: dict
    settled: bool                     # publishes send.settled with its rows
    alone: object                     # writes the send on its own: its message id (or a replay's outcome)
    index: int = 0                    # its place in the group being written
    outcome: object = None            # the message id, a refusal (ApiError), or None: not written
    done: threading.Event = field(default_factory=threading.Event)
    taken: bool = False               # in a group being written: it waits for that group's commit
    lead: bool = False                # woken to write the next group


@dataclass(eq=False)
class WindowRead:
    """One send's contact, waiting for its window to be read with others of the same number."""

    tenant_id: int
    number: object                    # the sending NumberSnapshot
    contact: str
    outcome: ContactWindows | None = None  # None: not read (the send reads it alone)
    done: threading.Event = field(default_factory=threading.Event)
    taken: bool = False
    lead: bool = False


class GroupCommit(Writers):
    """Leader and followers for one process: ``submit`` returns once ``write(session, group)`` wrote the item's
    group (each member's ``outcome`` set) or failed (outcomes left None)."""

    def __init__(self, write, *, max_group: int = 200):
        super().__init__(max_group)
        self.write = write

    def submit(self, session, item) -> None:
        if not self._join(item):
            item.done.wait(WAIT_SECONDS)
            with self._lock:
                if not item.lead and not item.taken and not item.done.is_set():
                    # The writer before us stalled before taking us: leave the queue and write alone.
                    self._waiting.remove(item)
                    return
            if not item.lead:
                # Taken by a writer: its rows may commit, so never write them a second time.
                item.done.wait()
                return
        self._write_next(session)

    def _write_next(self, session) -> None:
        with self._lock:
            group, self._waiting = self._waiting[:self.max_group], self._waiting[self.max_group:]
            for item in group:
                item.taken = True
        try:
            self.write(session, group)
        except Exception:
            log.exception("a grouped step failed; each of its members goes on alone")
            for item in group:
                item.outcome = None
        finally:
            self._hand_over(group)


class SendingGrouped:
    """The group's one transaction, for SendService (its ``session``, ``metering``, ``clock`` and the batch's
    ``_within_quota``)."""

    def write_send_group(self, session, group: list[GroupedSend]) -> None:
        """Write ``group`` in one transaction (see the module). Commits, then delivers what was published;
        sets each member's ``outcome``. Raises what the database raised, with nothing written. A group of one
        is written the single send's way (``alone``: in one statement where it can)."""
        if len(group) < 2:
            for item in group:
                try:
                    item.outcome = item.alone()
                except ApiError as exc:
                    item.outcome = exc
            return
        now = self.clock()
        periods: dict[int, datetime] = {}
        for item in group:
            periods.setdefault(item.tenant_id, item.period_start)
        # One period per tenant a group: a send at a period's turn is left out, to be written alone.
        group = [item for item in group if periods[item.tenant_id] == item.period_start]
        for index, item in enumerate(group):
            item.index = index
        written, decided = {}, {}
        try:
            conn = session.connection()
            tenants = sorted(periods)
            # Windows are locked in key order whatever the members' order; messages are inserted in the order
            # of their Idempotency-Keys, so two groups never wait on each other's keys crosswise.
            placed = {tenant_id: placed_in_windows(conn, tenant_id, sorted(
                (i for i in group if i.tenant_id == tenant_id), key=lambda i: i.row["idempotency_key"] or ""),
                now, periods[tenant_id]) for tenant_id in tenants}
            everyone = [entry for tenant_id in tenants for entry in placed[tenant_id]]
            rows = [{**item.row, "conversation_id": window.id, "opened_conversation": opened, "created_at": now,
                     "updated_at": now} for item, window, opened in everyone]
            ids = [row.id for row in insert_many(conn, Message.__table__, rows, returning=("id",))]
            written.update((item.index, message_id) for (item, _, _), message_id in zip(everyone, ids))
            for tenant_id in tenants:
                members = placed[tenant_id]
                self._within_quota(conn, tenant_id, members[0][0].rights, periods[tenant_id], members, written,
                                   decided)
            events.publish(conn, [
                send_settled(item.tenant_id, written[item.index], item.payload["to"], "accepted",
                             wa_message_id=item.row["wa_message_id"], category=item.admission.category)
                for item, _, _ in everyone if item.settled and item.index in written])
            events.commit(session)
        except BaseException:
            session.rollback()
            raise
        for item in group:
            item.outcome = written.get(item.index, decided.get(item.index))

    def meter_in_group(self, tenant, rights, number, payload, idempotency_key, digest, admission, alone, *,
                       answer=None, kept_callback_data=None):
        """A send's transaction, written in its process's group (PostgreSQL; a send held to its number's
        messaging limit is not grouped): accepted with the transport's ``answer`` when it was asked first,
        else pending. ``alone()`` writes the send on its own: how a group of one, a send that is not grouped
        and the members of a failed group are written. Returns the message id (or what ``alone`` returned);
        raises its quota's refusal (QuotaExceeded, PaymentRequired)."""
        session = self.session
        if (session.get_bind().dialect.name != "postgresql"
                or (admission.business_initiated and admission.messaging_limit is not None)):
            return alone()
        period = current_period(rights.subscription, self.clock(), rights.grace)
        item = GroupedSend(tenant.id, rights, period.start, payload, admission, {
            "tenant_id": tenant.id, "phone_number_id": number.id, "direction": "out", "wa_id": payload["to"],
            "type": payload["type"], "body_summary": summarise(payload), "period_start": period.start,
            "idempotency_key": idempotency_key, "request_hash": digest,
            "business_initiated": admission.business_initiated, **(answer or PENDING), "category": admission.category,
            "callback_data": kept_callback_data}, settled=self.settles_in_send(answer, tenant.id), alone=alone)
        self.group_sends.submit(session, item)
        if item.outcome is None:
            return alone()
        if isinstance(item.outcome, ApiError):
            raise item.outcome
        return item.outcome

    def windows_in_group(self, tenant_id: int, number, contact: str) -> ContactWindows | None:
        """``contact``'s customer-service window on ``number``, read with those of the other sends of the
        moment (PostgreSQL); None elsewhere, or when their read failed (the caller reads it alone)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return None
        item = WindowRead(tenant_id, number, contact)
        self.window_reads.submit(self.session, item)
        if item.outcome is None:
            return None
        return ContactWindows(number, self.clock(), item.outcome.expires, item.outcome.histories)

    def read_window_group(self, session, group: list[WindowRead]) -> None:
        """Read the windows of ``group``'s contacts, one statement per number, autocommitted. Sets each
        member's ``outcome``. Raises what the database raised."""
        numbers: dict[tuple, list[WindowRead]] = {}
        for item in group:
            numbers.setdefault((item.tenant_id, item.number.id), []).append(item)
        try:
            conn = session.connection(execution_options=single_statement(session))
            read = {key: ContactWindows.read(conn, key[0], members[0].number,
                                             sorted({m.contact for m in members}), self.clock())
                    for key, members in numbers.items()}
            session.commit()
        except BaseException:
            session.rollback()
            raise
        for key, members in numbers.items():
            for item in members:
                item.outcome = read[key]
