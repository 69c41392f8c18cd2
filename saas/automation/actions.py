"""A rule's actions that send nothing, done in the delivering transaction, and the run's bookkeeping.

Each returns the line the thread shows. Labels, consent and assignment go through their areas' own
functions (saas.contacts.labels, saas.contacts.consent.records, saas.inbox.assignment); a forwarded event is
a delivery to the tenant's webhook endpoint like any other (saas.messaging.tenant_webhooks), recorded once
per rule and message.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from saas.automation.models import SENDING, Run
from saas.contacts import labels
from saas.contacts.consent import records
from saas.contacts.models import OPTED_IN, OPTED_OUT, SOURCE_KEYWORD
from saas.database import insert_for
from saas.inbox import assignment
from saas.billing.models import Plan, Subscription
from saas.messaging.models import DELIVERY_PENDING, WebhookDelivery, WebhookEndpoint
from saas.messaging.tenant_webhooks.forwarding import FEATURE as FORWARDING
from saas.tenants import roles
from saas.tenants.models import User


def _labelled(conn, rule, action, message, thread) -> str:
    if thread.contact_id is None:
        return f"no contact to label {action['label']!r}"
    if action["type"] == "add_label":
        labels.add(conn, message.tenant_id, [(thread.contact_id, action["label"])])
        return f"label {action['label']!r} added"
    labels.take_off(conn, message.tenant_id, [thread.contact_id], [action["label"]])
    return f"label {action['label']!r} removed"


def _assigned(conn, action, message, thread) -> str:
    if action["user_id"] is None:
        if thread.assignee_id is not None:
            return "already assigned"
        given = assignment.assign_thread(conn, message.tenant_id, thread.id)
        return "assigned by round robin" if given else "no agent with room to assign to"
    role = conn.execute(select(User.role).where(User.id == action["user_id"],
                                                User.tenant_id == message.tenant_id)).scalar()
    if not roles.may(role, "inbox"):
        return "the agent to assign to is no longer a member who answers the inbox"
    assignment.assign_to(conn, message.tenant_id, thread.id, action["user_id"], by=None)
    return f"assigned to member {action['user_id']}"


def _consented(session, rule, action, message, thread) -> str:
    if thread.contact_id is None:
        return "no contact to record consent of"
    state = OPTED_IN if action["type"] == "opt_in" else OPTED_OUT
    changed = records.record(session, message.tenant_id, thread.contact_id, message.number_pk, state,
                             source=SOURCE_KEYWORD, actor=f"automation: {rule.name}", proof=message.text or None,
                             at=message.at, detail={"wa_message_id": message.wa_message_id, "rule_id": rule.id})
    return f"{state.replace('_', ' ')}" + ("" if changed else " (already)")


def _endpoint(conn, tenant_id: int) -> int | None:
    """The tenant's active webhook endpoint when its plan forwards (read on ``conn`` alone: no app context)."""
    features = conn.execute(select(Plan.features).join(Subscription, Subscription.plan_id == Plan.id)
                            .where(Subscription.tenant_id == tenant_id)).scalar()
    if FORWARDING not in (features or ()):
        return None
    return conn.execute(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant_id == tenant_id,
                                                         WebhookEndpoint.active.is_(True))).scalar()


def _forwarded(conn, rule, action, message, now: datetime) -> str:
    endpoint_id = _endpoint(conn, message.tenant_id)
    if endpoint_id is None:
        return f"event {action['event']!r} not forwarded: no active webhook endpoint"
    payload = {"object": "automation", "event": action["event"], "rule": {"id": rule.id, "name": rule.name},
               "message": {"id": message.wa_message_id, "from": message.wa_id, "type": message.kind,
                           "text": message.text, "payload": message.payload},
               "phone_number_id": message.number_pk}
    conn.execute(insert_for(conn, WebhookDelivery).on_conflict_do_nothing(
        index_elements=["tenant_id", "endpoint_id", "event_key"]).values(
        tenant_id=message.tenant_id, endpoint_id=endpoint_id,
        event_type=f"automation.{action['event']}"[:50],
        event_key=f"automation:{rule.id}:{action['event']}:{message.wa_message_id}"[:200],
        sequence_key=f"message:{message.wa_message_id}"[:160], wa_message_id=message.wa_message_id,
        payload=payload, state=DELIVERY_PENDING, attempts=0, next_attempt_at=now, created_at=now))
    return f"event {action['event']!r} forwarded"


def apply(conn, session, rule, action: dict, message, thread, now: datetime | None = None) -> str:
    """Do one action that sends nothing; the line the thread shows."""
    kind = action["type"]
    if kind in ("add_label", "remove_label"):
        return _labelled(conn, rule, action, message, thread)
    if kind == "assign":
        return _assigned(conn, action, message, thread)
    if kind in ("opt_in", "opt_out"):
        return _consented(session, rule, action, message, thread)
    if kind == "forward":
        return _forwarded(conn, rule, action, message, now or message.at)
    raise ValueError(f"not an action that sends nothing: {kind}")


_FINISH = update(Run).where(Run.id == bindparam("b_run"), Run.tenant_id == bindparam("b_tenant"),
                           Run.status == SENDING).values(
    status=bindparam("b_status"), finished_at=bindparam("b_now"), message_id=bindparam("b_message"),
    error_code=bindparam("b_code"), error_title=bindparam("b_title"))


def finish_many(conn, tenant_id: int, outcomes: list, now: datetime) -> None:
    """Runs being sent, each (run id, status, message id or None, ApiError or None), finished in one statement
    (those no longer ``sending`` are left as they are)."""
    if not outcomes:
        return
    conn.execute(_FINISH, [{"b_run": run_id, "b_tenant": tenant_id, "b_status": status, "b_now": now,
                            "b_message": message_id, "b_code": error.code[:40] if error else None,
                            "b_title": error.message[:300] if error else None}
                           for run_id, status, message_id, error in outcomes])
