"""Accepting live sends in groups: one UPDATE for every send whose answer came back meanwhile.

A live send is written ``pending`` before WhatsApp is called and ``accepted``
(with WhatsApp's id) after. Under load many sends of a process come back
from WhatsApp at about the same time; instead of one UPDATE and commit each,
the first becomes the writer and writes its own accept together with every
accept waiting at that moment, in one autocommitted statement. The others
wait for that statement: each request still answers only once its accept
is committed. Accepts that arrive while a statement runs are written by the
next writer, one of themselves, so nobody writes for longer than one
statement and no extra delay is added when the process is idle.

PostgreSQL only (``UPDATE ... FROM unnest(...)``); elsewhere each accept is
its own UPDATE. A group whose statement fails is written again one accept at
a time by each of its senders. Members whose tenant's ``send.settled`` a
consumer wants (the inbox) are grouped too: the writer publishes their events
in the statement's transaction and hands them on after its commit.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, text, update

from saas import events
from saas.database import single_statement
from saas.messaging.domain_events import send_settled
from saas.messaging.models import Message

log = logging.getLogger(__name__)

GROUP_ACCEPT = text("""
UPDATE messages AS m
   SET status = 'accepted', wa_message_id = v.wamid, response_status = 200, message_status = v.message_status,
       response_body = CAST(v.body AS json), updated_at = :now
  FROM unnest(CAST(:ids AS bigint[]), CAST(:wamids AS varchar[]), CAST(:message_statuses AS varchar[]),
              CAST(:bodies AS text[])) AS v(id, wamid, message_status, body)
 WHERE m.id = v.id AND m.status = 'pending'
RETURNING m.id, m.tenant_id, m.wa_id, m.category
""")

# One send's accept: conditional on the message still pending (recovery may have settled it).
ACCEPT = (
    update(Message).where(Message.id == bindparam("message_id"), Message.status == "pending")
    .values(status="accepted", wa_message_id=bindparam("wamid"), response_status=200,
            message_status=bindparam("message_status"),
            response_body=bindparam("body", type_=Message.response_body.type), updated_at=bindparam("now")))

# A writer waits this long at most for another's statement before writing its accept itself.
WAIT_SECONDS = 10.0


@dataclass
class Accept:
    message_id: int
    wamid: str
    message_status: str | None
    body: dict | None
    settled: bool = False        # publishes send.settled with its accept (a consumer wants its tenant's)
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False           # woken to write the next group
    accepted: bool | None = None  # True: written; False: no longer pending; None: not written


class Writers:
    """One process's group commits (its greenlets or threads): the members waiting, and whether one of them is
    writing. The first to arrive writes; the others wait, and each group's writer hands over to the next."""

    def __init__(self, max_group: int):
        self.max_group = max_group
        self._lock = threading.Lock()
        self._waiting: list = []
        self._writing = False

    def _join(self, item) -> bool:
        """Queue ``item``; True when it writes (nobody was writing), False when it waits for a writer."""
        with self._lock:
            self._waiting.append(item)
            lead = not self._writing
            if lead:
                self._writing = True
        return lead

    def _hand_over(self, group: list) -> None:
        """The writer is done with ``group``: the first member still waiting writes next (or nobody is writing),
        and the group's members are woken."""
        with self._lock:
            if self._waiting:
                following = self._waiting[0]
                following.lead = True
                following.done.set()
            else:
                self._writing = False
        for item in group:
            item.done.set()


class GroupAccepts(Writers):
    """Group commit of accepts for one process (its greenlets or threads)."""

    def __init__(self, *, max_group: int = 500):
        super().__init__(max_group)

    def accept(self, session, item: Accept, now: datetime) -> bool | None:
        """Write ``item`` (alone or in a group); True once committed accepted, False if it was no
        longer pending, None if its group failed (the caller then writes it alone).

        ``session`` is the calling request's, used only when this call becomes the writer: one
        autocommitted statement, or, when members publish ``send.settled``, the statement and
        their events in one transaction (delivered by the writer's ``events.commit``).
        """
        if not self._join(item):
            item.done.wait(WAIT_SECONDS)
            with self._lock:
                if not item.lead:
                    if not item.done.is_set() and item in self._waiting:
                        # The writer before us stalled: leave the queue and write alone.
                        self._waiting.remove(item)
                    return item.accepted
        try:
            self._write_group(session, now)
        except Exception:
            log.exception("group accept failed; its sends are accepted one by one")
        return item.accepted

    def _write_group(self, session, now: datetime) -> None:
        with self._lock:
            group, self._waiting = self._waiting[:self.max_group], self._waiting[self.max_group:]
        try:
            settling = {a.message_id: a for a in group if a.settled}
            conn = session.connection(execution_options={} if settling else single_statement(session))
            try:
                rows = conn.execute(GROUP_ACCEPT, {
                    "now": now,
                    "ids": [a.message_id for a in group],
                    "wamids": [a.wamid for a in group],
                    "message_statuses": [a.message_status for a in group],
                    "bodies": [json.dumps(a.body) if a.body is not None else None for a in group],
                }).all()
                if settling:
                    events.publish(conn, [send_settled(row.tenant_id, row.id, row.wa_id, "accepted",
                                                       wa_message_id=settling[row.id].wamid, category=row.category)
                                          for row in rows if row.id in settling])
                    session.commit()
            except BaseException:
                session.rollback()
                raise
            accepted = {row.id for row in rows}
            for item in group:
                item.accepted = item.message_id in accepted
        finally:
            self._hand_over(group)


def accept_send(session, groups: GroupAccepts, accept, *, settled: bool = False) -> bool:
    """Write a live send accepted with WhatsApp's id (and its answer, kept for an Idempotency-Key), with its
    ``send.settled`` when ``settled``. Commits, then delivers what was published (saas.events.commit).

    ``accept``: a KeptAccept. On PostgreSQL in a group with the process's other accepts of the moment;
    alone elsewhere, or when its group's statement failed. Returns False when
    the message was no longer pending (recovery settled it, or one of its
    statuses named it first: see saas.messaging.outbound.settle). Raises what the
    database raised; the caller tries again on a new connection.
    """
    if session.get_bind().dialect.name == "postgresql":
        try:
            accepted = groups.accept(session, Accept(accept.message_id, accept.wamid, accept.message_status,
                                                     accept.body, settled), accept.at)
            events.commit(session)
        except BaseException:
            session.rollback()
            raise
        if accepted is not None:
            return accepted
    return accept_alone(session, accept, _publish_settled(accept) if settled else None)


def _publish_settled(accept):
    def publish(conn, row):
        events.publish(conn, [send_settled(accept.tenant_id, accept.message_id, row.wa_id, "accepted",
                                           wa_message_id=accept.wamid, category=row.category)])
    return publish


def accept_alone(session, accept, then=None) -> bool:
    """Write one accept (a KeptAccept) in a transaction of its own, not grouped, and ``then(conn, row)`` in
    it when given (``row``: the message's wa_id and category): how settling publishes ``send.settled``.
    Commits, then delivers the events published (saas.events.commit). Returns False when the message was
    no longer pending."""
    try:
        conn = session.connection(execution_options={} if then else single_statement(session))
        row = conn.execute(ACCEPT.returning(Message.wa_id, Message.category), {
            "message_id": accept.message_id, "wamid": accept.wamid, "body": accept.body,
            "message_status": accept.message_status, "now": accept.at}).first()
        if row is not None and then is not None:
            then(conn, row)
        events.commit(session)
    except BaseException:
        session.rollback()
        raise
    return row is not None


def accept_many(session, accepts: list, now: datetime) -> set[int]:
    """Write a batch's live sends accepted (``accepts``: saas.messaging.outbound.accept_journal.KeptAccept)
    in one grouped UPDATE on PostgreSQL, one UPDATE each elsewhere, in one transaction. Commits.

    Returns the ids written; the others were no longer pending (see ``accept_send``). Raises what the
    database raised; the caller tries again on a new connection.
    """
    if not accepts:
        return set()
    try:
        if session.get_bind().dialect.name == "postgresql":
            written = set(session.connection(execution_options=single_statement(session)).execute(GROUP_ACCEPT, {
                "now": now, "ids": [a.message_id for a in accepts], "wamids": [a.wamid for a in accepts],
                "message_statuses": [a.message_status for a in accepts],
                "bodies": [json.dumps(a.body) if a.body is not None else None for a in accepts]}).scalars())
        else:
            conn = session.connection()
            written = {a.message_id for a in accepts if conn.execute(ACCEPT, {
                "message_id": a.message_id, "wamid": a.wamid, "body": a.body, "message_status": a.message_status,
                "now": now}).rowcount}
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return written
