"""The inbox's consumers of messaging's domain events (found by saas.events.discover).

Inbound messages, statuses and settled sends become thread entries for tenants whose plan has the inbox,
in the delivering transaction; an inbound message on an unassigned thread is handed to the next agent when
the tenant assigns automatically; the tenant's open inbox pages are woken. Every step is idempotent, so an
event handed over again (the outbox delivers at least once) changes nothing.
"""
from __future__ import annotations

from flask import current_app, has_app_context

from saas import events
from sqlalchemy import select

from saas.billing.models import Plan, Subscription
from saas.inbox import assignment, live, threads
from saas.inbox.seats import FEATURE
from saas.messaging.domain_events import MESSAGE_RECEIVED, SEND_SETTLED, STATUS_CHANGED
from saas.messaging.inbound.objects import first_error, text


def with_inbox(conn, tenant_ids) -> set[int]:
    """The tenants among ``tenant_ids`` subscribed to a plan that includes the inbox.

    Read on ``conn`` alone (sends publish from plain threads, with no app context). A plan whose rights are
    withheld for non-payment still has its threads kept: the pages and the API refuse them until it is paid,
    and nothing is lost meanwhile."""
    if not tenant_ids:
        return set()
    rows = conn.execute(select(Subscription.tenant_id, Plan.features).join(Plan, Plan.id == Subscription.plan_id)
                        .where(Subscription.tenant_id.in_(sorted(tenant_ids)))).all()
    return {tenant_id for tenant_id, features in rows if FEATURE in (features or ())}


def _one(conn, event):
    payload = event.payload
    if event.type == MESSAGE_RECEIVED:
        touched = threads.record_inbound(conn, event.tenant_id, payload["number"]["id"], payload["from"],
                                         payload["wa_message_id"], payload["object"] or {}, payload.get("contact"))
        if (touched is not None and touched.assignee_id is None
                and assignment.auto_assign_on(conn, event.tenant_id)):
            assignment.assign_thread(conn, event.tenant_id, touched.thread_id)
        return touched
    if event.type == STATUS_CHANGED:
        status = payload.get("status")
        error = first_error(payload.get("object") or {}) if status == "failed" else {}
        return threads.apply_status(conn, event.tenant_id, payload["wa_message_id"], status,
                                    error_code=error.get("code") if isinstance(error.get("code"), int) else None,
                                    error_title=text(error.get("title") or error.get("message"), 300))
    failed = payload.get("outcome") == "failed"
    return threads.record_message_row(conn, event.tenant_id, payload["message_id"],
                                      status="failed" if failed else "accepted",
                                      error_code=payload.get("error_code") if failed else None,
                                      error_title=payload.get("error_title") if failed else None)


def take(conn, batch) -> int:
    """The consumer: each event of a tenant with the inbox onto its thread, in order; then the tenants' pages
    are woken. (``serves`` only decides whether an event is written: another consumer may want it for a tenant
    without the inbox, and it reaches every consumer of its type.)"""
    served = with_inbox(conn, {event.tenant_id for event in batch})
    touched = [t for t in (_one(conn, event) for event in batch if event.tenant_id in served) if t is not None]
    if touched and has_app_context():
        live.for_app(current_app).notify(t.tenant_id for t in touched)
    return len(touched)


events.subscribe((MESSAGE_RECEIVED, STATUS_CHANGED, SEND_SETTLED), take, name="inbox.threads", serves=with_inbox)
