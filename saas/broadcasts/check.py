"""The check before sending: who of the audience would get the broadcast, who is dropped and why,
three recipients' variables rendered, and what it would cost.

``assess`` is the rule, a pure function over a chunk of contacts and what it needs to know of them
(their consent, the rooms left under the limits); the check (``run``) and the start
(saas.broadcasts.freeze) both stream the audience through it in id order, so what the check counts
is what starting freezes and then sends.

Dropped, in this order of precedence:
- ``invalid_number``: no WhatsApp id, or one phonenumbers does not know as a valid number;
- ``opted_out`` (a marketing template to a contact who opted out of this number), ``no_opt_in``
  (one with no opt-in, unless the plan says the tenant manages consent itself);
- ``marketing_to_us_number``: Meta does not deliver marketing templates to +1 numbers;
- ``missing_variable``: a variable with no value for the contact and no default;
- then by place in the audience: ``plan_recipient_limit`` (past the plan's recipients per
  broadcast), ``messaging_limit`` (past the users the number may reach in the next 24 h),
  ``quota`` (past what a hard-capped plan has left this period).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from saas.billing.models import Plan
from saas.broadcasts import audience as audiences
from saas.broadcasts.variables import render
from saas.contacts.directory import parse_wa_id
from saas.costs import estimates as quotes
from saas.contacts.models import OPTED_IN, OPTED_OUT, Consent
from saas.messaging.outbound.rules import USERS_REACHED, messaging_limit
from saas.metering.services import usage_summary
from saas.timeutil import iso, utcnow

INVALID_NUMBER = "invalid_number"
OPTED_OUT_REASON = "opted_out"
NO_OPT_IN = "no_opt_in"
US_MARKETING = "marketing_to_us_number"
MISSING_VARIABLE = "missing_variable"
PLAN_LIMIT = "plan_recipient_limit"
MESSAGING_LIMIT = "messaging_limit"
QUOTA = "quota"
REASONS = (INVALID_NUMBER, OPTED_OUT_REASON, NO_OPT_IN, US_MARKETING, MISSING_VARIABLE, PLAN_LIMIT,
           MESSAGING_LIMIT, QUOTA)
SAMPLES = 3
# The country of a recipient whose number names none.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rules:
    """What the check needs beyond the contacts: the template, the bindings, the consent rule, the rooms."""

    category: str                   # Meta's: MARKETING, UTILITY, AUTHENTICATION
    variables: tuple
    bindings: dict
    consent_by_tenant: bool         # the plan's admin setting: our opt-ins are not required
    max_recipients: int | None      # the plan's recipients per broadcast
    limit_room: int | None          # users the number may still reach in 24 h
    quota_room: int | None          # units a hard-capped plan has left

    @property
    def marketing(self) -> bool:
        return self.category.upper() == "MARKETING"


@dataclass
class Tally:
    """The running count over the audience's chunks."""

    audience: int = 0
    recipients: int = 0
    dropped: dict = field(default_factory=dict)
    by_country: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    contact: object
    reason: str | None      # None: it is sent
    values: dict            # the variables rendered (frozen on its recipient row)
    wa_id: str | None
    country: str | None


def assess(contacts: list, consents: dict, rules: Rules, tally: Tally) -> list[Decision]:
    """Decide each of ``contacts`` (in audience order) and count it in ``tally``. ``consents`` maps a
    contact id to its consent state for the broadcast's number. Pure: reads nothing else."""
    decisions = []
    for contact in contacts:
        tally.audience += 1
        parsed = parse_wa_id(contact.wa_id) if contact.wa_id else None
        values, missing = render(contact, rules.bindings, list(rules.variables))
        reason = _reason(contact, parsed, consents.get(contact.id), missing, rules, tally.recipients)
        country = (parsed.country if parsed else None) or contact.country
        if reason is None:
            tally.recipients += 1
            tally.by_country[country or UNKNOWN] = tally.by_country.get(country or UNKNOWN, 0) + 1
            if len(tally.samples) < SAMPLES:
                tally.samples.append({"contact_id": contact.id, "wa_id": parsed.digits, "name": contact.name,
                                      "variables": values})
        else:
            tally.dropped[reason] = tally.dropped.get(reason, 0) + 1
        decisions.append(Decision(contact, reason, values, parsed.digits if parsed else None, country))
    return decisions


def _reason(contact, parsed, consent: str | None, missing: list, rules: Rules, sent_so_far: int) -> str | None:
    if parsed is None or not parsed.valid:
        return INVALID_NUMBER
    if rules.marketing:
        if consent == OPTED_OUT:
            return OPTED_OUT_REASON
        if consent != OPTED_IN and not rules.consent_by_tenant:
            return NO_OPT_IN
        if parsed.digits.startswith("1"):
            return US_MARKETING
    if missing:
        return MISSING_VARIABLE
    for room, reason in ((rules.max_recipients, PLAN_LIMIT), (rules.limit_room, MESSAGING_LIMIT),
                         (rules.quota_room, QUOTA)):
        if room is not None and sent_so_far >= room:
            return reason
    return None


# -- what the rules are read from ----------------------------------------------------------------------

def consents_for(session, tenant_id: int, number_pk: int, contact_ids: list[int]) -> dict[int, str]:
    """Each contact's consent state for the number (contacts with no record are absent)."""
    if not contact_ids:
        return {}
    rows = session.execute(select(Consent.contact_id, Consent.state).where(
        Consent.tenant_id == tenant_id, Consent.phone_number_id == number_pk, Consent.contact_id.in_(contact_ids)))
    return dict(rows.all())


def rules_for(session, tenant, rights, broadcast, number, variables: list[str], now=None) -> Rules:
    """The check's rules for ``broadcast`` from ``number`` now: the plan's settings, the room left under
    the number's messaging limit and the plan's quota."""
    now = now or utcnow()
    plan = session.get(Plan, rights.effective.id)
    limit = messaging_limit(number.messaging_limit_tier, number.mode)
    limit_room = None
    if limit is not None:
        reached = session.execute(USERS_REACHED, {"tenant_id": tenant.id, "number_id": number.id,
                                                  "since": now - timedelta(hours=24)}).scalar() or 0
        limit_room = max(limit - reached, 0)
    return Rules(broadcast.template_category, tuple(variables), broadcast.variables or {},
                 bool(plan and plan.consent_managed_by_tenant),
                 plan.max_broadcast_recipients if plan else None, limit_room, _quota_room(tenant, rights, broadcast))


def _quota_room(tenant, rights, broadcast) -> int | None:
    summary = usage_summary(tenant, rights=rights)
    if not summary.hard_cap or not _priced(rights.effective, broadcast):
        return None
    return summary.remaining


def _priced(plan, broadcast) -> bool:
    """Whether a send of the broadcast's category counts against the plan's quota."""
    if plan.per_message:
        return broadcast.template_category.lower() in (plan.message_categories or ())
    return True


def estimate(session, rights, tenant, broadcast, waba_id: str | None, tally: Tally, now) -> dict:
    """What sending would cost, both ways. What our plan bills: every recipient one unit of the plan's (a new
    conversation, or a priced message), the ones the period still includes free, the rest at the plan's
    overage price. What Meta charges, per country: the rate of the template's category in the recipient's
    market under the card in force on the day the broadcast goes (its schedule, else today), as the rules
    in force charge a template sent outside the customer-service window (a window open now may be closed
    when it goes); the plan's price stands in for a market no card covers."""
    plan = rights.effective
    priced = _priced(plan, broadcast)
    units = tally.recipients if priced else 0
    remaining = usage_summary(tenant, rights=rights).remaining
    included = min(units, remaining)
    price = plan.overage_cents if plan.overage_cents is not None else Decimal(0)
    billable = 0 if plan.hard_cap else units - included
    category = broadcast.template_category.lower()
    day = (broadcast.schedule_at or now).date()
    quote = quotes.quote(session, [None if country == UNKNOWN else country for country in tally.by_country],
                         category, day, tenant_id=tenant.id, waba_id=waba_id)
    by_country, totals = {}, {}
    for country, n in sorted(tally.by_country.items()):
        ours = price * n if priced else Decimal(0)
        market, micros = quote.rates[None if country == UNKNOWN else country]
        if micros is not None:
            meta = {"priced_by": "rate_card", "currency": quote.card[1].lower(),
                    "unit_price_cents": _cents(Decimal(micros) / 10_000),
                    "cost_cents": _cents(Decimal(micros * n) / 10_000)}
        else:
            meta = {"priced_by": "plan", "currency": plan.currency,
                    "unit_price_cents": _cents(price if priced else Decimal(0)), "cost_cents": _cents(ours)}
        totals[meta["currency"]] = totals.get(meta["currency"], Decimal(0)) + Decimal(meta["cost_cents"])
        by_country[country] = {"recipients": n, "cost_cents": _cents(ours), "market": market, "meta": meta}
    return {"currency": plan.currency, "category": category,
            "unit": "messages" if plan.per_message else "conversations",
            "units": units, "included_units": included, "billable_units": billable,
            "unit_price_cents": _cents(price), "total_cents": _cents(price * billable),
            "by_country": by_country,
            "meta": {"priced_on": day.isoformat(), "context": quotes.OUTSIDE_WINDOW, "charged": quote.charged,
                     "card_effective_from": quote.card_from.isoformat() if quote.card_from else None,
                     "total_cents": {currency: _cents(total) for currency, total in sorted(totals.items())}}}


def _cents(amount: Decimal) -> str:
    """An amount as the check writes it: exact, no exponent ("100", not "1E+2")."""
    return format(amount.normalize(), "f") if amount else "0"


def result(tally: Tally, rules: Rules, cost: dict, now) -> dict:
    """The check as stored with the broadcast and answered by the API."""
    return {"audience": tally.audience, "recipients": tally.recipients,
            "dropped": {"total": sum(tally.dropped.values()),
                        "by_reason": {reason: tally.dropped.get(reason, 0) for reason in REASONS}},
            "samples": tally.samples, "estimate": cost,
            "limits": {"max_recipients": rules.max_recipients, "messaging_limit_room": rules.limit_room,
                       "quota_room": rules.quota_room},
            "checked_at": iso(now)}


def run(session, tenant, rights, broadcast, number, variables: list[str]) -> dict:
    """The check of ``broadcast`` over its whole audience now (read only)."""
    now = utcnow()
    rules = rules_for(session, tenant, rights, broadcast, number, variables, now)
    tally = Tally()
    for contacts, _ in audiences.stream(session, tenant.id, broadcast.audience):
        assess(contacts, consents_for(session, tenant.id, number.id, [c.id for c in contacts]), rules, tally)
    return result(tally, rules, estimate(session, rights, tenant, broadcast, number.waba_id, tally, now), now)


