"""The inbox's consumers of messaging's domain events (found by saas.events.discover).

Inbound messages, statuses and settled sends become thread entries for tenants whose plan has the inbox,
in the delivering transaction; an inbound message on an unassigned thread is handed to the next agent when
the tenant assigns automatically; the tenant's open inbox pages are woken. Every step is idempotent, so an
event handed over again (the outbox delivers at least once) changes nothing.
"""
from __future__ import annotations

from itertools import groupby
from operator import attrgetter

from flask import current_app, has_app_context

from sqlalchemy import select

from saas import events
from saas.cache import SnapshotCache

from saas.billing.models import Plan, Subscription
from saas.inbox import assignment, batches, live
from saas.inbox.seats import FEATURE
from saas.messaging.domain_events import MESSAGE_RECEIVED, SEND_SETTLED, STATUS_CHANGED

# Whether a tenant's plan has the inbox, by tenant id (the access caches' default bound).
_HAS_INBOX = SnapshotCache(5.0)


def with_inbox(conn, tenant_ids) -> set[int]:
    """The tenants among ``tenant_ids`` subscribed to a plan that includes the inbox.

    Read on ``conn`` alone (sends publish from plain threads, with no app context), through a snapshot
    cache as the send path's rights are (saas.cache: a plan or subscription changed in this process is seen
    at once, elsewhere within its bound): every send asks it. A plan whose rights are withheld for
    non-payment still has its threads kept: the pages and the API refuse them until it is paid, and
    nothing is lost meanwhile."""
    answers = {tenant_id: _HAS_INBOX.peek(tenant_id) for tenant_id in tenant_ids}
    unknown = sorted(tenant_id for tenant_id, answer in answers.items() if answer is None)
    if unknown:
        rows = conn.execute(select(Subscription.tenant_id, Plan.features).join(Plan, Plan.id == Subscription.plan_id)
                            .where(Subscription.tenant_id.in_(unknown))).all()
        has = {tenant_id for tenant_id, features in rows if FEATURE in (features or ())}
        for tenant_id in unknown:
            answers[tenant_id] = tenant_id in has
            _HAS_INBOX.put(tenant_id, answers[tenant_id])
    return {tenant_id for tenant_id, answer in answers.items() if answer}


def _assign(conn, touched, auto_assign: dict[int, bool]) -> None:
    """Threads new inbound messages reached with nobody on them, handed to the next agent where the tenant
    assigns automatically."""
    for thread in touched:
        if thread.assignee_id is not None:
            continue
        if thread.tenant_id not in auto_assign:  # read once per tenant and delivering transaction
            auto_assign[thread.tenant_id] = assignment.auto_assign_on(conn, thread.tenant_id)
        if auto_assign[thread.tenant_id]:
            assignment.assign_thread(conn, thread.tenant_id, thread.thread_id)


def take(conn, batch) -> int:
    """The consumer: each event of a tenant with the inbox onto its thread, in order; then the tenants' pages
    are woken. (``serves`` only decides whether an event is written: another consumer may want it for a tenant
    without the inbox, and it reaches every consumer of its type.)"""
    served = with_inbox(conn, {event.tenant_id for event in batch})
    touched = []
    auto_assign: dict[int, bool] = {}
    # Runs of one type, in order, each in a few set-based statements.
    for event_type, run in groupby((event for event in batch if event.tenant_id in served), key=attrgetter("type")):
        if event_type == SEND_SETTLED:
            touched += batches.record_settled(conn, list(run))
        elif event_type == STATUS_CHANGED:
            touched += batches.apply_statuses(conn, list(run))
        else:
            received = batches.record_inbound(conn, list(run))
            _assign(conn, received, auto_assign)
            touched += received
    if touched and has_app_context():
        live.for_app(current_app).notify(t.tenant_id for t in touched)
    return len(touched)


events.subscribe((MESSAGE_RECEIVED, STATUS_CHANGED, SEND_SETTLED), take, name="inbox.threads", serves=with_inbox)
