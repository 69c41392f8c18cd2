"""Rules run on an inbound message, in the transaction that delivers its ``message.received`` event.

For each enabled rule of the tenant, in order, that the message triggers and whose conditions hold: a run is
written (unique per rule and inbound message: an event delivered again finds it and does nothing), the
actions that send nothing are done on the spot (labels, assignment, consent, a forwarded event), the reply
is written into the run as the Cloud API body to send (``sending`` sends it once this transaction has
committed), and the run is logged on the customer's thread. A rule that stops after a match ends the turn.
Loop guards (saas.automation.guards) hold replies back, and say so in the thread.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from saas.automation import actions as doing
from saas.automation import guards
from saas.automation.context import (
    TenantSetting, enabled_rules, first_from_contact, labels_of, with_automation,
)
from saas.automation.matching import Context, Inbound, inbound_of, matches
from saas.automation.models import DONE, SKIPPED, Run
from saas.automation.rules import filled
from saas.database import insert_for
from saas.inbox import threads
from saas.messaging.inbound.objects import moment
from saas.timeutil import utcnow

log = logging.getLogger(__name__)


def context_for(conn, setting: TenantSetting, message: Inbound) -> Context:
    return Context(first=first_from_contact(conn, message.tenant_id, message.number_pk, message.wa_id,
                                            message.wa_message_id),
                   labels=labels_of(conn, message.tenant_id, message.wa_id),
                   hours=setting.hours(message.number_pk), zone=setting.zone)


def _message_of(event, now: datetime) -> tuple[Inbound, str]:
    payload = event.payload
    obj = payload.get("object") or {}
    contact = payload.get("contact") if isinstance(payload.get("contact"), dict) else {}
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    name = profile.get("name") if isinstance(profile.get("name"), str) else None
    message = inbound_of(event.tenant_id, payload["number"]["id"], payload["from"], payload["wa_message_id"], obj,
                         moment(obj.get("timestamp"), now), name[:200] if name else None)
    return message, payload["number"].get("display_number") or ""


def _reply_held(conn, setting: TenantSetting, message: Inbound, our_number: str, now: datetime) -> str | None:
    """Why a reply to ``message`` is held back by a loop guard, or None."""
    if guards.from_automated_number(conn, our_number, message.wa_id, now):
        return "reply held: the sender is one of our numbers answering automatically"
    if guards.replies_in_hour(conn, message.tenant_id, message.number_pk, message.wa_id, now) \
            >= setting.replies_per_hour:
        return f"reply held: {setting.replies_per_hour} automated replies to this customer in the past hour"
    return None


def _run(conn, rule, message: Inbound, thread_id: int, now: datetime) -> int | None:
    return conn.execute(insert_for(conn, Run).on_conflict_do_nothing(
        index_elements=["tenant_id", "rule_id", "wa_message_id"]).values(
        tenant_id=message.tenant_id, rule_id=rule.id, rule_name=rule.name, wa_message_id=message.wa_message_id,
        phone_number_id=message.number_pk, wa_id=message.wa_id, thread_id=thread_id, status=DONE,
        created_at=now).returning(Run.id)).scalar()


def apply_rule(conn, session, setting, rule, message: Inbound, our_number: str, now: datetime) -> int | None:
    """Run ``rule`` on ``message`` (it matched); the id of the run when it has a reply to send."""
    thread = threads.thread_for(conn, message.tenant_id, message.number_pk, message.wa_id, name=message.name,
                                now=now)
    run_id = _run(conn, rule, message, thread.id, now)
    if run_id is None:
        return None  # done when this event was first delivered
    done = [doing.apply(conn, session, rule, action, message, thread) for action in rule.actions
            if action["type"] != "reply"]
    reply = next((a for a in rule.actions if a["type"] == "reply"), None)
    due = None
    if reply is not None:
        held = _reply_held(conn, setting, message, our_number, now)
        if held:
            doing.finish(conn, message.tenant_id, run_id, SKIPPED, now, error_title=held)
            done.append(held)
        else:
            body = filled(reply["message"], message.name, message.wa_id)
            doing.queue_reply(conn, message.tenant_id, run_id, body)
            done.append(f"reply queued ({body['type']})")
            due = run_id
    threads.log_rule_run(conn, message.tenant_id, thread.id, rule.name, "; ".join(done) or "matched",
                         detail={"rule_id": rule.id, "run_id": run_id, "trigger": rule.trigger}, now=now)
    return due


def handle(conn, events) -> list[int]:
    """The consumer's work: every event of a tenant with automation through its rules; the runs with a reply
    to send (for ``sending``)."""
    served = with_automation(conn, {event.tenant_id for event in events})
    now = utcnow()
    due: list[int] = []
    rules_by_tenant: dict[int, list] = {}
    settings: dict[int, TenantSetting] = {}
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        for event in events:
            if event.tenant_id not in served:
                continue
            message, our_number = _message_of(event, now)
            if guards.sent_by_automation(conn, message.wa_message_id):
                continue
            rules = rules_by_tenant.get(event.tenant_id)
            if rules is None:
                rules = rules_by_tenant[event.tenant_id] = enabled_rules(session, event.tenant_id)
            if not rules:
                continue
            setting = settings.get(event.tenant_id) or settings.setdefault(event.tenant_id,
                                                                            TenantSetting(conn, event.tenant_id))
            context = context_for(conn, setting, message)
            for rule in rules:
                if not matches(rule, message, context):
                    continue
                run_id = apply_rule(conn, session, setting, rule, message, our_number, now)
                if run_id is not None:
                    due.append(run_id)
                if rule.stop_after_match:
                    break
        session.flush()
    return due

