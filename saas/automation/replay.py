"""Replay: what a rule would have done over the last 30 days of inbound messages, sending nothing.

Each inbound message of the tenant (as stored: WhatsApp's message object, in the order received) is read
as the live consumer reads it (saas.automation.matching, .context), the rule alone tried on it, the loop
guards applied (its own replies counted against the hourly cap as they would have gone), and each reply
that would have gone priced by the plan's rules (saas.billing.pricing): a conversation opens when no window
of its category was open for the customer then (windows that really were open, or that an earlier reply of
the replay would have opened). Labels are read as they are now. A read-only transaction; writes nothing.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select

from saas.automation import guards
from saas.automation.context import TenantSetting
from saas.automation.engine import context_for
from saas.automation.matching import inbound_of, matches
from saas.automation.rules import filled, get_rule
from saas.billing import entitlements, pricing
from saas.extensions import db
from saas.messaging.inbound.objects import moment
from saas.messaging.models import Conversation, Message, PhoneNumber, Template
from saas.messaging.templates.message_templates import SANDBOX_TEMPLATES
from saas.timeutil import iso, utcnow

DAYS = 30
SCANNED_MAX = 20000
SHOWN_MAX = 100
WINDOW = timedelta(hours=24)


def _category(tenant_id: int, body: dict) -> str:
    if body["type"] != "template":
        return "service"
    template = body.get("template") or {}
    name, language = template.get("name"), (template.get("language") or {}).get("code")
    category = db.session.scalar(select(Template.category).where(
        Template.tenant_id == tenant_id, Template.name == name, Template.language == language).limit(1))
    if category is None and (name, language) in SANDBOX_TEMPLATES:
        category = SANDBOX_TEMPLATES[(name, language)].category
    category = (category or "marketing").lower()
    return category if category in ("marketing", "utility", "authentication") else "marketing"


class Windows:
    """Conversation windows as they were, plus those the replay's own replies would have opened."""

    def __init__(self, tenant_id: int):
        self.tenant_id = tenant_id
        self.opened: dict[tuple, datetime] = {}

    def opens(self, contact: str, category: str, at: datetime) -> bool:
        if self.opened.get((contact, category), datetime.min) > at:
            return False
        was_open = db.session.scalar(select(Conversation.id).where(
            Conversation.tenant_id == self.tenant_id, Conversation.contact == contact,
            Conversation.category == category, Conversation.opened_at <= at, Conversation.expires_at > at).limit(1))
        if was_open is not None:
            return False
        self.opened[(contact, category)] = at + WINDOW
        return True


def replay(tenant, rule_id, *, now: datetime | None = None) -> dict:
    """What rule ``rule_id`` of the tenant would have matched, sent and cost over the last 30 days (see the
    module). NotFound for another tenant's rule."""
    rule = get_rule(tenant, rule_id)
    now = now or utcnow()
    terms = entitlements.for_tenant(tenant).effective
    conn = db.session.connection()
    setting = TenantSetting(conn, tenant.id)
    displays = dict(db.session.execute(select(PhoneNumber.id, PhoneNumber.display_number)
                                       .where(PhoneNumber.tenant_id == tenant.id)).all())
    rows = db.session.execute(
        select(Message.phone_number_id, Message.wa_id, Message.wa_message_id, Message.raw_message, Message.type,
               Message.body_summary, Message.created_at)
        .where(Message.tenant_id == tenant.id, Message.direction == "in",
               Message.created_at >= now - timedelta(days=DAYS))
        .order_by(Message.id).limit(SCANNED_MAX + 1)).all()
    windows, sent_at = Windows(tenant.id), defaultdict(list)
    found, billed, totals = [], Counter(), Counter()
    for row in rows[:SCANNED_MAX]:
        if not row.wa_message_id or guards.sent_by_automation(conn, row.wa_message_id):
            continue
        raw = row.raw_message if isinstance(row.raw_message, dict) else {
            "type": row.type, "text": {"body": row.body_summary or ""}}
        message = inbound_of(tenant.id, row.phone_number_id, row.wa_id, row.wa_message_id, raw,
                             moment(raw.get("timestamp"), row.created_at))
        if not matches(rule, message, context_for(conn, setting, message, [rule])):
            continue
        totals["matched"] += 1
        shown = {"wa_message_id": message.wa_message_id, "from": message.wa_id, "number_id": message.number_pk,
                 "at": iso(message.at), "text": message.text[:300], "actions": [a["type"] for a in rule.actions],
                 "reply": None, "held": None, "opens_conversation": False}
        reply = next((a for a in rule.actions if a["type"] == "reply"), None)
        if reply is not None:
            thread = (message.number_pk, message.wa_id)
            recent = [t for t in sent_at[thread] if message.at - t < guards.HOUR]
            if guards.from_automated_number(conn, displays.get(message.number_pk, ""), message.wa_id, message.at):
                shown["held"] = "the sender is one of our numbers answering automatically"
            elif len(recent) >= setting.replies_per_hour:
                shown["held"] = f"{setting.replies_per_hour} automated replies in the past hour"
            if shown["held"]:
                totals["held"] += 1
            else:
                sent_at[thread].append(message.at)
                body = filled(reply["message"], None, message.wa_id)
                category = _category(tenant.id, body)
                opened = windows.opens(message.wa_id, category, message.at)
                charge = pricing.charge(terms, pricing.Send(category, opened=opened))
                totals["sends"] += 1
                totals["conversations"] += int(opened)
                if charge.billed:
                    billed[charge.billed] += 1
                shown.update(reply=body, opens_conversation=opened, category=category)
        if len(found) < SHOWN_MAX:
            found.append(shown)
    db.session.rollback()
    return {"rule_id": rule.id, "days": DAYS, "scanned": min(len(rows), SCANNED_MAX),
            "truncated": len(rows) > SCANNED_MAX, "matched": totals["matched"], "sends": totals["sends"],
            "held": totals["held"], "conversations": totals["conversations"],
            "billable_units": dict(billed), "billing_unit": terms.billing_unit, "matches": found}
