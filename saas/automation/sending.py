"""Sending the replies rules queued, off the transaction that matched them, in batches through the send service.

A run with a reply is written ``pending`` in the delivering transaction (saas.automation.engine). Once that
transaction commits, its runs are handed to a lane of this process's background queue (``send_runs``:
AUTOMATION_SEND_THREADS threads of their own, so replies neither wait behind the applying of notifications nor
hold it up); each thread takes every run waiting in the lane at once. The sweep (every process's
housekeeping, ``sweep``) sends what a crash, a full lane or a delivery without an app context left.

Runs are claimed many at a time (``pending`` to ``sending`` in one UPDATE, the rows taken with FOR UPDATE SKIP
LOCKED on PostgreSQL: one process sends a run, and a claim never waits for another) and sent a batch per
tenant and number through the send service's ``send_many``, which meters each one and checks WhatsApp's rules
(the window) and consent as a single send; each message row carries the Idempotency-Key ``automation:<run
id>`` (the inbox and the loop guards know automated sends by it). The outcomes go on the runs in one
statement and into the customers' threads, written by "automation". A run is sent at most once: a claim left
``sending`` by a process that stopped is settled from the message its key names (``recover``); only a run
whose message was never written (so nothing left) is sent again, and one whose message is still pending (its
fate unknown) waits for the send service to settle it.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import timedelta

from flask import current_app, has_app_context
from sqlalchemy import bindparam, event, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from saas import events
from saas.automation import retention
from saas.automation.actions import finish_many
from saas.automation.guards import AUTOMATED
from saas.automation.models import FAILED, FEATURE, PENDING, SENDING, SENT, Run
from saas.billing import entitlements
from saas.errors import ApiError, UpstreamError
from saas.extensions import db
from saas.inbox import batches, live, rendering, threads
from saas.inbox.models import AUTOMATION
from saas.messaging.models import Message, PhoneNumber
from saas.messaging.outbound import send_service
from saas.messaging.outbound.batch import Refused
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

JOB = "saas.automation.sending.send_runs"
# A run still ``sending`` this long after its claim was left by a process that stopped (``recover``).
STALE_CLAIM = timedelta(minutes=5)
SWEEP_LIMIT = 200
# Runs one claim takes at most (a batch per tenant and number among them).
CLAIM_LIMIT = 100

# Runs written in this context's transaction, sent once it commits.
_due: ContextVar[tuple | None] = ContextVar("automation_runs_due", default=None)


def remember(run_ids: list[int]) -> None:
    """Send these runs once the current transaction commits (forgotten if it rolls back)."""
    if run_ids:
        _due.set((_due.get() or ()) + tuple(run_ids))


def _after_commit(session) -> None:
    run_ids = _due.get()
    if not run_ids:
        return
    _due.set(None)
    if has_app_context() and "background" in current_app.extensions:
        background = current_app.extensions["background"]
        for run_id in run_ids:
            background.enqueue(JOB, [run_id])


def _after_rollback(session) -> None:
    if session.in_transaction():
        return  # a savepoint rolled back; the transaction goes on
    _due.set(None)


def install(app) -> None:
    """Hand committed runs to the background queue's lane for replies, and sweep for left ones in every process's
    housekeeping (AUTOMATION_SWEEP_SECONDS)."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
    app.config.setdefault("AUTOMATION_SWEEP_SECONDS", 2.0)
    # Replies are sent by this many threads of each process, beside the applying of notifications; at most
    # QUEUE wait (more are left to the sweep).
    app.config.setdefault("AUTOMATION_SEND_THREADS", 4)
    app.config.setdefault("AUTOMATION_SEND_QUEUE", 2000)
    app.extensions["background"].lane(JOB, threads=app.config["AUTOMATION_SEND_THREADS"],
                                      bound=app.config["AUTOMATION_SEND_QUEUE"], batch=CLAIM_LIMIT)
    if app.config.get("HOUSEKEEPING"):
        app.extensions["background"].every("automation replies", app.config["AUTOMATION_SWEEP_SECONDS"], sweep)
        keep = timedelta(days=app.config["AUTOMATION_RUN_RETENTION_DAYS"])
        app.extensions["background"].every("automation runs kept", 3600.0,
                                           lambda: retention.prune(db.session, keep=keep))


def send_runs(run_ids) -> int:
    """Claim and send the replies of these runs (those still pending), in batches; how many were sent. The
    sends' domain events go to the process's deliverer (with EVENTS_IN_BACKGROUND), delivered in sets."""
    run_ids = sorted(set(run_ids))
    sent = 0
    with events.handed_to_deliverer():
        for start in range(0, len(run_ids), CLAIM_LIMIT):
            sent += _send_claimed(_claim(run_ids[start:start + CLAIM_LIMIT]))
    return sent


# The lane hands a thread every call waiting in it at once.
send_runs.batch = lambda calls: send_runs([run_id for (ids,) in calls for run_id in ids])

# Built once.
_CLAIMED = (Run.id, Run.tenant_id, Run.thread_id, Run.wa_id, Run.phone_number_id, Run.rule_name, Run.body)
_GRAPH_ID = select(PhoneNumber.phone_number_id).where(PhoneNumber.id == bindparam("number_pk"),
                                                      PhoneNumber.tenant_id == bindparam("tenant_id"))


def claim_statement(run_ids: list[int] | None = None, limit: int = CLAIM_LIMIT):
    """The claim: runs taken for sending (``pending`` to ``sending``), those of ``run_ids`` still pending, or
    else the ``limit`` oldest pending; rows another transaction holds are skipped (PostgreSQL), never waited
    for. Returns the runs' rows (what sending reads of them)."""
    due = select(Run.id).where(Run.status == PENDING)
    due = due.where(Run.id.in_(run_ids)).order_by(Run.id) if run_ids is not None else due.order_by(Run.created_at)
    due = due.limit(limit).with_for_update(skip_locked=True)
    return (update(Run).where(Run.id.in_(due.scalar_subquery()), Run.status == PENDING)
            .values(status=SENDING, claimed_at=utcnow()).returning(*_CLAIMED)
            .execution_options(synchronize_session=False))


def _claim(run_ids: list[int] | None = None, limit: int = CLAIM_LIMIT) -> list:
    """``claim_statement``'s runs, in id order. Commits."""
    try:
        rows = db.session.execute(claim_statement(run_ids, limit)).all()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return sorted(rows, key=lambda row: row.id)


def _send_claimed(runs: list) -> int:
    """Send claimed runs, a batch per tenant and number; how many were sent."""
    groups: dict[tuple[int, int], list] = {}
    for run in runs:
        groups.setdefault((run.tenant_id, run.phone_number_id), []).append(run)
    sent = 0
    for (tenant_id, number_pk), batch in groups.items():
        sent += _send_batch(tenant_id, number_pk, batch)
    if groups and has_app_context():
        live.for_app(current_app).notify(sorted({tenant_id for tenant_id, _ in groups}))
    return sent


def _send_batch(tenant_id: int, number_pk: int, runs: list) -> int:
    """One tenant's claimed runs from one number through ``send_many``; their outcomes written. Commits."""
    bodies = [{"messaging_product": "whatsapp", "to": run.wa_id, **(run.body or {})} for run in runs]
    tenant = tenant_snapshot(tenant_id)
    phone_number_id = db.session.connection().execute(_GRAPH_ID, {"number_pk": number_pk,
                                                                  "tenant_id": tenant_id}).scalar()
    db.session.rollback()  # no transaction held while WhatsApp is called
    try:
        if tenant is None or phone_number_id is None:
            raise ApiError("The tenant or its number is gone.")
        rights = entitlements.for_tenant(tenant)
        rights.require(FEATURE, "automation")
        results = send_service(current_app).send_many(tenant, phone_number_id, bodies, rights=rights,
                                                      keys=[key_of(run.id) for run in runs])
    except IntegrityError:
        # A run's message was written before: its claim was taken back from a process still at work. Nothing
        # of this batch was written or sent; ``recover`` settles the runs from their messages.
        log.warning("automation replies %s: a message of the batch exists already", [run.id for run in runs])
        return 0
    except ApiError as exc:  # the sender itself refused (suspended, number gone, no automation): none sent
        results = [Refused(index, run.wa_id, exc) for index, run in enumerate(runs)]
    outcomes = [(run, body, result.message_id, getattr(result, "wa_message_id", None),
                 None if result.accepted else result.error) for run, body, result in zip(runs, bodies, results)]
    _record(tenant_id, number_pk, outcomes)
    return sum(1 for result in results if result.accepted)


def key_of(run_id: int) -> str:
    """The Idempotency-Key on the message of run ``run_id``."""
    return f"{AUTOMATED}{run_id}"


def _record(tenant_id: int, number_pk: int, outcomes: list) -> None:
    """Each run's outcome (run, body sent, message id, WhatsApp's id, error or None): on the run, in one
    statement where it is still this claim's, and in the customer's thread (written by "automation"; a reply
    not sent says why), a statement per table for the batch. Commits."""
    now = utcnow()
    try:
        conn = db.session.connection()
        finish_many(conn, tenant_id, [(run.id, FAILED if error else SENT, message_id, error)
                                      for run, _, message_id, _, error in outcomes], now)
        items = []
        for run, body, message_id, wamid, error in outcomes:
            items += _into_thread(tenant_id, run, body, message_id, wamid, error, now)
        if items:
            batches.record_replies(conn, tenant_id, number_pk, items, now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def _into_thread(tenant_id: int, run, body: dict, message_id, wamid, error, now) -> list[tuple]:
    """What a run's outcome writes in the customer's thread, as ``batches.record_replies`` takes it."""
    if run.thread_id is None:
        return []
    items = []
    if message_id is not None:
        kind, content, line = rendering.outbound(body)
        items.append((run.wa_id, threads.outbound_row(
            tenant_id, None, message_id=message_id, wa_message_id=wamid, author=AUTOMATION, kind=kind,
            content=content, line=line, at=now, status="failed" if error else "accepted",
            error_title=error.message[:300] if error else None, now=now)))
    if error is not None:
        items.append((None, threads.rule_run_row(tenant_id, run.thread_id, run.rule_name,
                                                 f"reply not sent: {error.message}", now,
                                                 detail={"run_id": run.id, "code": error.code})))
    return items


def sweep(now=None, limit: int = SWEEP_LIMIT) -> int:
    """Settle the claims stopped processes left (``recover``), then send up to ``limit`` pending replies, oldest
    first, in batches; how many were sent."""
    recover(now)
    sent, left = 0, limit
    with events.handed_to_deliverer():
        while left > 0:
            claimed = _claim(limit=min(left, CLAIM_LIMIT))
            if not claimed:
                break
            left -= len(claimed)
            sent += _send_claimed(claimed)
    return sent


_WENT_OUT = ("accepted", "sent", "delivered", "read")


def recover(now=None, limit: int = SWEEP_LIMIT) -> int:
    """Runs still ``sending`` STALE_CLAIM after their claim (the process sending them stopped), settled from
    the message their key names; how many. None written: nothing of the run left, and it is pending again.
    One still pending (it may have reached WhatsApp) is left until the send service settles it: never sent
    again. Otherwise the run takes the message's outcome (and the thread its entry). Commits."""
    now = now or utcnow()
    try:
        stale = db.session.execute(select(*_CLAIMED).where(Run.status == SENDING,
                                                           Run.claimed_at < now - STALE_CLAIM)
                                   .order_by(Run.claimed_at).limit(limit).with_for_update(skip_locked=True)).all()
        messages = {}
        if stale:
            messages = {(row.tenant_id, row.idempotency_key): row for row in db.session.execute(
                select(Message.id, Message.tenant_id, Message.idempotency_key, Message.status,
                       Message.wa_message_id, Message.error_code, Message.error_title)
                .where(tuple_(Message.tenant_id, Message.idempotency_key).in_(
                    sorted({(run.tenant_id, key_of(run.id)) for run in stale}))))}
        unsent = [run.id for run in stale if (run.tenant_id, key_of(run.id)) not in messages]
        if unsent:
            db.session.execute(update(Run).where(Run.id.in_(unsent), Run.status == SENDING)
                               .values(status=PENDING, claimed_at=None)
                               .execution_options(synchronize_session=False))
        settled: dict[tuple[int, int], list] = {}
        for run in stale:
            message = messages.get((run.tenant_id, key_of(run.id)))
            if message is None or message.status == "pending":
                continue
            error = None if message.status in _WENT_OUT else UpstreamError(
                message.error_title or UpstreamError.message, details={"whatsapp_code": message.error_code})
            body = {"messaging_product": "whatsapp", "to": run.wa_id, **(run.body or {})}
            settled.setdefault((run.tenant_id, run.phone_number_id), []).append(
                (run, body, message.id, message.wa_message_id, error))
        for (tenant_id, number_pk), outcomes in settled.items():
            _record(tenant_id, number_pk, outcomes)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    found = len(unsent) + sum(len(outcomes) for outcomes in settled.values())
    if found:
        log.warning("settled %d automation replies a stopped process left sending", found)
    return found
