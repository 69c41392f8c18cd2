"""Rules run on an inbound message, in the transaction that delivers its ``message.received`` event.

For each enabled rule of the tenant, in order, that the message triggers and whose conditions hold: a run is
written (unique per rule and inbound message: an event delivered again finds it and does nothing), the
actions that send nothing are done on the spot (labels, assignment, consent, a forwarded event), the reply
is written into the run as the Cloud API body to send (``sending`` sends it once this transaction has
committed), and the run is logged on the customer's thread. A rule that stops after a match ends the turn.
Loop guards (saas.automation.guards) hold replies back, and say so in the thread. A delivered batch's runs
and their lines are written together (saas.automation.runs), a statement each whatever the batch's size.
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
from saas.automation.models import DONE, FIRST_MESSAGE, PENDING, SKIPPED
from saas.automation.rules import filled
from saas.automation.runs import BatchRuns
from saas.inbox import batches, threads
from saas.inbox.consumers import with_inbox
from saas.messaging.inbound.objects import moment
from saas.timeutil import utcnow

log = logging.getLogger(__name__)


def context_for(conn, setting: TenantSetting, message: Inbound, rules=None) -> Context:
    """What ``rules`` (by default: any rule) read besides ``message``. Whether it is the contact's first and
    the contact's labels are read only when one of the rules asks (its trigger, its conditions)."""
    first = rules is None or any(rule.trigger == FIRST_MESSAGE for rule in rules)
    labelled = rules is None or any((rule.conditions or {}).get("labels") for rule in rules)
    return Context(first=first and first_from_contact(conn, message.tenant_id, message.number_pk, message.wa_id,
                                                      message.wa_message_id),
                   labels=labels_of(conn, message.tenant_id, message.wa_id) if labelled else frozenset(),
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


def _reply_held(setting: TenantSetting, guard: guards.BatchGuards, message: Inbound, our_number: str) -> str | None:
    """Why a reply to ``message`` is held back by a loop guard, or None."""
    if guard.from_automated_number(our_number, message.wa_id):
        return "reply held: the sender is one of our numbers answering automatically"
    if guard.replies_in_hour(message.tenant_id, message.number_pk, message.wa_id) >= setting.replies_per_hour:
        return f"reply held: {setting.replies_per_hour} automated replies to this customer in the past hour"
    return None


def apply_rule(conn, session, setting, guard, runs, rule, message: Inbound, our_number: str, now: datetime,
               thread=None):
    """Run ``rule`` on ``message`` (it matched), unless it ran on it before (the event delivered again); the
    customer's thread it ran on (None when it did not run).

    ``guard``: the batch's loop guards (guards.BatchGuards), told of the reply queued and the thread logged on
    (marked updated once the batch is done). ``runs``: the batch's runs (saas.automation.runs.BatchRuns),
    which keep this one with its outcome (a reply queued, or held back by a loop guard) and its line in the
    thread, written with the others'. ``thread``: the customer's thread as read (locked) in this
    transaction, when nothing changed it since."""
    if runs.ran(rule, message):
        return None  # done when this event was first delivered
    if thread is None:
        thread = threads.thread_for(conn, message.tenant_id, message.number_pk, message.wa_id, name=message.name,
                                    now=now)
    reply = next((a for a in rule.actions if a["type"] == "reply"), None)
    held = _reply_held(setting, guard, message, our_number) if reply is not None else None
    if reply is None:
        outcome = {"status": DONE}
    elif held:
        outcome = {"status": SKIPPED, "finished_at": now, "error_title": held[:300]}
    else:
        body = filled(reply["message"], message.name, message.wa_id)
        outcome = {"status": PENDING, "body": body}
    key = runs.add(rule, message, thread.id, now, replying=reply is not None and not held, **outcome)
    done = []
    for action in rule.actions:
        if action["type"] == "reply":
            continue
        if action["type"] == "assign" and runs.logged_on(thread.id):
            runs.flush(conn)  # the lines kept for this thread come before the assignment's own
        done.append(doing.apply(conn, session, rule, action, message, thread))
    if held:
        done.append(held)
    elif reply is not None:
        done.append(f"reply queued ({body['type']})")
    runs.log(key, thread.id, rule, "; ".join(done) or "matched", now)
    guard.logged.add(thread.id)
    if reply is not None and not held:
        guard.queued(message.tenant_id, message.number_pk, message.wa_id)
    return thread


def _threads_up_front(conn, messages: list[Inbound], now: datetime) -> dict:
    """The customers' threads of the tenants with the inbox, read (locked) or made in one go: the inbox's
    consumer makes each in this transaction anyway. Other tenants' threads are made when a rule matches."""
    inbox = with_inbox(conn, {message.tenant_id for message in messages})
    names: dict[tuple, str | None] = {}
    for message in messages:
        if message.tenant_id in inbox:
            key = (message.tenant_id, message.number_pk, message.wa_id)
            names[key] = names.get(key) or message.name
    return batches.customer_threads(conn, names, now) if names else {}


def handle(conn, events) -> list[int]:
    """The consumer's work: every event of a tenant with automation through its rules; the runs with a reply
    to send (for ``sending``)."""
    served = with_automation(conn, {event.tenant_id for event in events})
    events = [event for event in events if event.tenant_id in served]
    ours = guards.sent_by_automation_among(conn, [event.payload["wa_message_id"] for event in events])
    now = utcnow()
    settings: dict[int, TenantSetting] = {}
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        rules_by_tenant = {tenant_id: enabled_rules(session, tenant_id)
                           for tenant_id in sorted({event.tenant_id for event in events})}
        work = [_message_of(event, now) for event in events if rules_by_tenant[event.tenant_id]]
        work = [(message, number) for message, number in work if message.wa_message_id not in ours]
        # Each thread as read here (or by a match) serves the next match until an assignment changes it.
        fresh = _threads_up_front(conn, [message for message, _ in work], now)
        guard = guards.BatchGuards(conn, [message for message, _ in work], now)
        runs = BatchRuns(conn, rules_by_tenant, [message for message, _ in work])
        for message, our_number in work:
            rules = rules_by_tenant[message.tenant_id]
            setting = settings.get(message.tenant_id) or settings.setdefault(
                message.tenant_id, TenantSetting(conn, message.tenant_id))
            context = context_for(conn, setting, message, rules)
            for rule in rules:
                if not matches(rule, message, context):
                    continue
                key = (message.tenant_id, message.number_pk, message.wa_id)
                thread = apply_rule(conn, session, setting, guard, runs, rule, message, our_number, now,
                                    fresh.get(key))
                if thread is None or any(action["type"] == "assign" for action in rule.actions):
                    fresh.pop(key, None)  # read again by the next match
                else:
                    fresh[key] = thread
                if rule.stop_after_match:
                    break
        runs.flush(conn)
        threads.touch_threads(conn, guard.logged, now)
        session.flush()
    return runs.due
