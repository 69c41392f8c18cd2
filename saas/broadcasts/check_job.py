"""The check of a large audience as a job: the audience read a chunk at a time, resumable at any point.

A broadcast whose audience is past the inline limit is ``checking`` from its creation (or a new check)
until this job has read it all. A worker claims the check with a lease (one conditional UPDATE: checking,
and no lease or a lease over) and renews it in each chunk's transaction, which also writes how far it got:
the last contact read, the running tally and the rules the check began with. A worker that dies leaves the
progress of its last committed chunk; the next one (``resume_stalled``) goes on from there with the same
rules, so the counts are those one uninterrupted pass would give. The end writes the check and makes the
broadcast a draft again, to be confirmed. A cancel, or a worker that lost its lease, stops it at its next
chunk.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from saas import jobs
from saas.billing import entitlements
from saas.broadcasts import audience as audiences
from saas.broadcasts import check as checks
from saas.broadcasts.models import CHECKING, DRAFT, Broadcast
from saas.broadcasts.templates import variables_of
from saas.database import dropped
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

JOB = "saas.broadcasts.check_job.run"
CHUNK = 1000
# How long a claim holds without a chunk committed; a chunk of CHUNK contacts takes well under a second.
LEASE = timedelta(minutes=2)
# A check no worker has claimed this long after it was asked for lost its job.
QUEUED_GRACE = timedelta(minutes=2)
FAILED = "The check stopped on an unexpected error; run it again."


class LeaseLost(Exception):
    """Another worker took the check over, or the broadcast is no longer checking: this one stops."""


def start(broadcast_id: int) -> None:
    """Hand the check to a worker: its own RQ job (put on Redis before this returns), or without Redis this
    process's background thread. A job lost with its process is picked up by ``resume_stalled``."""
    if not jobs.queue_now(JOB, broadcast_id, retry_waits=[10, 60]):
        jobs.enqueue(JOB, broadcast_id)


def run(broadcast_id: int, *, chunk: int = CHUNK) -> None:
    """The job: claim the check and read the audience to its end. Does nothing when another worker holds it
    or it is no longer checking. What fails for good leaves the broadcast a draft without a check (the
    error in ``check_progress``); a lost database raises (RQ, or the sweep, runs it again)."""
    session = db.session
    lease = claim(session, broadcast_id)
    if lease is None:
        return
    try:
        _check(session, broadcast_id, lease, chunk)
    except LeaseLost:
        session.rollback()
        log.warning("the check of broadcast %s was taken over or stopped", broadcast_id)
    except Exception as exc:
        session.rollback()
        if dropped(exc):
            raise
        log.exception("the check of broadcast %s failed", broadcast_id)
        session.execute(update(Broadcast).where(Broadcast.id == broadcast_id, Broadcast.status == CHECKING,
                                                Broadcast.check_lease_until == lease)
                        .values(status=DRAFT, check_lease_until=None, check_progress={"error": FAILED},
                                updated_at=utcnow()))
        session.commit()


def claim(session, broadcast_id: int, now: datetime | None = None) -> datetime | None:
    """Take the check (checking, with no lease or one that is over): the new lease's end, or None."""
    now = now or utcnow()
    lease = now + LEASE
    taken = session.execute(update(Broadcast).where(
        Broadcast.id == broadcast_id, Broadcast.status == CHECKING,
        or_(Broadcast.check_lease_until.is_(None), Broadcast.check_lease_until < now))
        .values(check_lease_until=lease).execution_options(synchronize_session=False)).rowcount
    session.commit()
    return lease if taken else None


def _check(session, broadcast_id: int, lease: datetime, chunk: int) -> None:
    broadcast = session.get(Broadcast, broadcast_id)
    tenant = tenant_snapshot(broadcast.tenant_id)
    rights = entitlements.for_tenant(tenant)
    number = session.get(PhoneNumber, broadcast.phone_number_id)
    progress = dict(broadcast.check_progress or {})
    if "rules" in progress:
        rules = checks.Rules(**{**progress["rules"], "variables": tuple(progress["rules"]["variables"])})
    else:
        rules = checks.rules_for(session, tenant, rights, broadcast, number, variables_of(session, broadcast, number))
    tally = checks.Tally(**progress.get("tally", {}))
    spec, tenant_id, number_pk, waba_id = broadcast.audience, broadcast.tenant_id, number.id, number.waba_id
    session.rollback()
    for contacts, through in audiences.stream(session, tenant_id, spec, progress.get("through", 0), chunk):
        checks.assess(contacts, checks.consents_for(session, tenant_id, number_pk, [c.id for c in contacts]),
                      rules, tally)
        progress.update(checked=tally.audience, through=through, tally=asdict(tally), rules=asdict(rules))
        lease = _renew(session, broadcast_id, lease, check_progress=dict(progress))
    broadcast = session.get(Broadcast, broadcast_id)
    now = utcnow()
    result = checks.result(tally, rules, checks.estimate(session, rights, tenant, broadcast, waba_id, tally, now), now)
    _renew(session, broadcast_id, lease, status=DRAFT, check_result=result, checked_at=now, check_lease_until=None,
           check_progress=None)


def _renew(session, broadcast_id: int, lease: datetime, **values) -> datetime:
    """One chunk's transaction: the lease renewed (its row lock orders this worker against any other) with
    ``values``; the new lease's end. Raises LeaseLost when another worker holds the check or it stopped."""
    renewed = utcnow() + LEASE
    moved = session.execute(update(Broadcast).where(
        Broadcast.id == broadcast_id, Broadcast.status == CHECKING, Broadcast.check_lease_until == lease)
        .values(**{"check_lease_until": renewed, "updated_at": utcnow(), **values})
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise LeaseLost()
    session.commit()
    return renewed


def resume_stalled(now=None) -> int:
    """Queue again the checks whose job was lost (never claimed for QUEUED_GRACE) or whose worker died (its
    lease over); how many. Every process's housekeeping runs it; a second job of one check finds it claimed,
    or done, and does nothing."""
    now = now or utcnow()
    ids = list(db.session.scalars(select(Broadcast.id).where(Broadcast.status == CHECKING, or_(
        and_(Broadcast.check_lease_until.is_(None), Broadcast.updated_at < now - QUEUED_GRACE),
        Broadcast.check_lease_until < now)).limit(20)))
    db.session.rollback()
    for broadcast_id in ids:
        log.warning("the check of broadcast %s stalled; queued again", broadcast_id)
        start(broadcast_id)
    return len(ids)
