"""Sending the replies rules queued, off the transaction that matched them, through the send service.

A run with a reply is written ``pending`` in the delivering transaction (saas.automation.engine). Once that
transaction commits, its runs are handed one by one to a lane of this process's background queue
(``send_runs``: AUTOMATION_SEND_THREADS threads of their own, so replies neither wait behind the applying of
notifications nor hold it up, and several are on their way to WhatsApp at once); the sweep (every process's
housekeeping, ``sweep``) sends what a crash, a full lane or a delivery without an app context left.
A run is claimed (``pending`` to ``sending``, one conditional UPDATE: one process sends it) and sent with the
Idempotency-Key ``automation:<run id>``, so a run claimed again after a crash is answered from the first
send, never sent twice; the send service meters it, checks WhatsApp's rules (the window) and consent. The
outcome goes on the run and into the customer's thread, written by "automation".
"""
from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import timedelta

from flask import current_app, has_app_context
from sqlalchemy import bindparam, event, or_, select, update
from sqlalchemy.orm import Session

from saas import events
from saas.automation import retention
from saas.automation.actions import finish
from saas.automation.models import FAILED, FEATURE, PENDING, SENDING, SENT, Run
from saas.billing import entitlements
from saas.errors import ApiError, IdempotencyConflict
from saas.extensions import db
from saas.inbox import live, rendering, threads
from saas.inbox.models import AUTOMATION
from saas.messaging.models import PhoneNumber
from saas.messaging.outbound import payloads, send_service
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

JOB = "saas.automation.sending.send_runs"
# A run still ``sending`` this long after its claim was left by a process that stopped; it is sent again
# (under the same Idempotency-Key, so what went out is not sent twice).
STALE_CLAIM = timedelta(minutes=5)
SWEEP_LIMIT = 200

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
                                      bound=app.config["AUTOMATION_SEND_QUEUE"])
    if app.config.get("HOUSEKEEPING"):
        app.extensions["background"].every("automation replies", app.config["AUTOMATION_SWEEP_SECONDS"], sweep)
        keep = timedelta(days=app.config["AUTOMATION_RUN_RETENTION_DAYS"])
        app.extensions["background"].every("automation runs kept", 3600.0,
                                           lambda: retention.prune(db.session, keep=keep))


def send_runs(run_ids) -> int:
    """Send the replies of these runs (those still pending); how many were sent. The sends' domain events
    go to the process's deliverer (with EVENTS_IN_BACKGROUND), delivered in sets with others'."""
    with events.handed_to_deliverer():
        return sum(1 for run_id in run_ids if send_run(run_id) == SENT)


# Built once: one of each per reply.
_CLAIM = (update(Run).where(Run.id == bindparam("b_run"), Run.status == PENDING)
          .values(status=SENDING, claimed_at=bindparam("b_now"))
          .returning(Run.tenant_id, Run.thread_id, Run.wa_id, Run.phone_number_id, Run.rule_name, Run.body)
          .execution_options(synchronize_session=False))
_GRAPH_ID = select(PhoneNumber.phone_number_id).where(PhoneNumber.id == bindparam("number_pk"),
                                                      PhoneNumber.tenant_id == bindparam("tenant_id"))


def _claim(run_id: int):
    """The run's row (what sending reads of it) when this process took it, pending, for sending; else None."""
    now = utcnow()
    try:
        run = db.session.connection().execute(_CLAIM, {"b_run": run_id, "b_now": now}).first()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return run


def send_run(run_id: int) -> str | None:
    """Claim and send one run's reply; its status after (None: not pending, someone else has it). Commits."""
    run = _claim(run_id)
    if run is None:
        return None
    tenant_id, thread_id, wa_id, number_pk, rule_name = (run.tenant_id, run.thread_id, run.wa_id,
                                                         run.phone_number_id, run.rule_name)
    body = {"messaging_product": "whatsapp", "to": wa_id, **(run.body or {})}
    tenant = tenant_snapshot(tenant_id)
    phone_number_id = db.session.connection().execute(_GRAPH_ID, {"number_pk": number_pk,
                                                                  "tenant_id": tenant_id}).scalar()
    db.session.rollback()  # no transaction held while WhatsApp is called
    outcome, error = None, None
    try:
        if tenant is None or phone_number_id is None:
            raise ApiError("The tenant or its number is gone.")
        rights = entitlements.for_tenant(tenant)
        rights.require(FEATURE, "automation")
        message = payloads.outbound_item(body)
        outcome = send_service(current_app).send(tenant, rights, phone_number_id, message.payload,
                                                 idempotency_key=f"automation:{run_id}", upstream=message.upstream)
    except IdempotencyConflict:
        return SENDING  # the first try is still on its way; the sweep looks again
    except ApiError as exc:
        error = exc
    message_id = outcome.message_id if outcome else (error.details or {}).get("message_id") if error else None
    status = SENT if outcome else FAILED
    conn = db.session.connection()
    now = utcnow()
    finish(conn, tenant_id, run_id, status, now, message_id=message_id,
           error_code=error.code if error else None, error_title=error.message if error else None)
    if message_id is not None and thread_id is not None:
        kind, content, line = rendering.outbound(body)
        threads.record_outbound(conn, tenant_id, number_pk=number_pk, wa_id=wa_id, message_id=message_id,
                                wa_message_id=outcome.wa_message_id if outcome else None, author=AUTOMATION,
                                kind=kind, content=content, line=line, at=now,
                                status="accepted" if outcome else "failed",
                                error_title=error.message[:300] if error else None)
    if error is not None and thread_id is not None:
        threads.log_rule_run(conn, tenant_id, thread_id, rule_name, f"reply not sent: {error.message}",
                             detail={"run_id": run_id, "code": error.code}, now=now)
    db.session.commit()
    if has_app_context():
        live.for_app(current_app).notify([tenant_id])
    return status


def sweep(now=None, limit: int = SWEEP_LIMIT) -> int:
    """Send the pending replies, and those a stopped process left ``sending``; how many were sent."""
    now = now or utcnow()
    rows = db.session.execute(select(Run.id, Run.status).where(
        or_(Run.status == PENDING, (Run.status == SENDING) & (Run.claimed_at < now - STALE_CLAIM)))
        .order_by(Run.created_at).limit(limit)).all()
    stale = [run_id for run_id, status in rows if status == SENDING]
    if stale:
        db.session.execute(update(Run).where(Run.id.in_(stale), Run.status == SENDING,
                                             Run.claimed_at < now - STALE_CLAIM)
                           .values(status=PENDING).execution_options(synchronize_session=False))
    db.session.commit()
    return send_runs([run_id for run_id, _ in rows])
