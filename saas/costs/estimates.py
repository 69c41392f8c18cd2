"""Each outbound message's cost at Meta, in sets: estimated when its send settles (the card in force on
the send's day, its category, whether it went inside the customer-service window, the account's volume
tier), then confirmed by the first status carrying WhatsApp's ``pricing`` object (``billable``,
``category``, ``type``), the estimate kept beside it with the difference. Both run in the delivering
transaction of the domain events (saas.costs.consumers) on its connection alone: no app context."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import and_, bindparam, select, update

from saas.costs.markets import market_for_region, market_key, market_of
from saas.costs.models import CATEGORY_LENGTH, CONTEXT_LENGTH, LIST_TIER, MessageCost, PricingTier
from saas.costs.prices import Prices
from saas.database import among, insert_many
from saas.messaging.models import MODE_LIVE, Message, PhoneNumber
from saas.text import problem
from saas.timeutil import utcnow

INSIDE_WINDOW = "inside_window"
OUTSIDE_WINDOW = "outside_window"
# The market of a number no mapping row covers.
UNKNOWN_MARKET = ""


def _tiers(conn, tenant_ids, months) -> dict[tuple, list[tuple[datetime, str]]]:
    """(tenant, waba, market key, category, month) -> [(since, tier)], latest first."""
    found: dict[tuple, list] = {}
    rows = conn.execute(select(PricingTier.tenant_id, PricingTier.waba_id, PricingTier.market_key,
                               PricingTier.category, PricingTier.effective_month, PricingTier.since, PricingTier.tier)
                        .where(PricingTier.tenant_id.in_(sorted(tenant_ids)),
                               PricingTier.effective_month.in_(sorted(months)))).all()
    for tenant_id, waba_id, key, category, month, since, tier in rows:
        found.setdefault((tenant_id, waba_id, key, category, month), []).append((since, tier))
    for dated in found.values():
        dated.sort(reverse=True)
    return found


def _tier(tiers, tenant_id, waba_id, market, category, at: datetime) -> str:
    for since, tier in tiers.get((tenant_id, waba_id, market_key(market), category, f"{at:%Y-%m}"), ()):
        if since <= at:
            return tier
    return LIST_TIER


def estimate(conn, pairs) -> int:
    """Estimate the cost of the outbound messages ``pairs`` (tenant id, message id) of live numbers that have
    none yet; how many were estimated. Idempotent: a message estimated once keeps its estimate."""
    wanted = set(pairs)
    if not wanted:
        return 0
    ids = sorted({message_id for _, message_id in wanted})
    tenant_ids = sorted({tenant_id for tenant_id, _ in wanted})
    # By the primary key (tenant, message).
    done = {tuple(row) for row in conn.execute(select(MessageCost.tenant_id, MessageCost.message_id)
                                               .where(MessageCost.tenant_id.in_(tenant_ids),
                                                      among(conn, MessageCost.message_id, ids)))}
    rows = [row for row in conn.execute(
        select(Message.tenant_id, Message.id, Message.wa_id, Message.created_at, Message.category,
               Message.business_initiated, PhoneNumber.waba_id)
        .join(PhoneNumber, and_(PhoneNumber.id == Message.phone_number_id, PhoneNumber.tenant_id == Message.tenant_id))
        # A sandbox number's messages never reach Meta: nothing to price.
        .where(among(conn, Message.id, ids), Message.direction == "out", PhoneNumber.mode == MODE_LIVE))
        if (row.tenant_id, row.id) in wanted and (row.tenant_id, row.id) not in done]
    if not rows:
        return 0
    prices = Prices(conn)
    tiers = _tiers(conn, {row.tenant_id for row in rows}, {f"{row.created_at:%Y-%m}" for row in rows})
    placed = [(row, market_of(row.wa_id, row.created_at.date()) or UNKNOWN_MARKET,
               prices.card_on(row.created_at.date())) for row in rows]
    prices.read_rates({(card[0], market) for _, market, card in placed if card is not None})
    now, records = utcnow(), []
    for row, market, card in placed:
        context = OUTSIDE_WINDOW if row.business_initiated else INSIDE_WINDOW
        charged = prices.charged(row.created_at.date(), row.category, context)
        tier = _tier(tiers, row.tenant_id, row.waba_id, market, row.category, row.created_at)
        micros = None
        if card is not None and charged is not None:
            micros = prices.rate(card[0], market, row.category, tier) if charged else 0
        records.append({"tenant_id": row.tenant_id, "message_id": row.id, "sent_at": row.created_at,
                        "market": market, "category": row.category, "context": context,
                        "card_id": card[0] if card else None, "currency": card[1] if card else None, "tier": tier,
                        "estimated_billable": charged, "estimated_micros": micros, "estimated_at": now})
    insert_many(conn, MessageCost.__table__, records, conflict=("tenant_id", "message_id"))
    return len(records)


@dataclass(frozen=True)
class Quote:
    """What one message costs at Meta to each region asked for (see ``quote``)."""

    card: tuple[int, str] | None        # (card id, currency) of the card in force
    card_from: date | None              # from when that card holds
    charged: bool | None                # whether the rules in force charge the category in the context
    rates: dict                         # region -> (market, rate in micros, or None where the card has none)


def quote(conn, regions, category: str, day: date, *, tenant_id: int, waba_id: str | None,
          context: str = OUTSIDE_WINDOW) -> Quote:
    """The cost of one message of ``category`` sent on ``day`` in ``context`` to each of ``regions`` (a
    recipient's region as phonenumbers gives it, None when unknown): its market, and its rate under the card
    in force that day at the account's volume tier for that market and month (else the list rate); 0 where the
    rules in force leave it free. A rate is None where no card is in force or the card does not list the
    market (a free message is 0 under any card). Read only; a few statements whatever the number of regions."""
    prices = Prices(conn)
    card = prices.card_on(day)
    charged = prices.charged(day, category, context)
    markets = {region: market_for_region(region, day) or UNKNOWN_MARKET for region in regions}
    rates = {region: (market or None, None) for region, market in markets.items()}
    if card is not None:
        prices.read_rates({(card[0], market) for market in markets.values()})
        at = datetime.combine(day, time.max)
        tiers = _tiers(conn, {tenant_id}, {f"{at:%Y-%m}"})
        for region, market in markets.items():
            micros = (0 if charged is False
                      else prices.rate(card[0], market, category, _tier(tiers, tenant_id, waba_id, market, category, at)))
            rates[region] = (market or None, micros)
    return Quote(card, prices.card_date(day), charged, rates)


def _billable(pricing: dict) -> bool | None:
    billable = pricing.get("billable")
    if isinstance(billable, bool):
        return billable
    kind = pricing.get("type")
    # Per-message pricing deprecates ``billable``: a "regular" message is the charged kind, the free_* are not.
    return (kind == "regular") if isinstance(kind, str) else None


def _text(value, length: int) -> str | None:
    """A field of WhatsApp's as it can be stored: bounded, and nothing PostgreSQL refuses (NUL)."""
    return value[:length] if isinstance(value, str) and value and not problem(value) else None


_CONFIRM = (update(MessageCost)
            .where(MessageCost.tenant_id == bindparam("t"), MessageCost.message_id == bindparam("m"),
                   MessageCost.confirmed_at.is_(None))
            .values(confirmed_billable=bindparam("b_billable"), confirmed_category=bindparam("b_category"),
                    confirmed_type=bindparam("b_kind"), confirmed_micros=bindparam("b_micros"),
                    difference_micros=bindparam("b_difference"), confirmed_at=bindparam("b_at"))
            .execution_options(synchronize_session=False))


def confirm(conn, reports) -> int:
    """Confirm the cost of the messages ``reports`` name: (tenant id, WhatsApp message id, the status's
    ``pricing`` object). The first report of a message confirms it (a message not estimated yet is estimated
    first); later ones change nothing. How many were confirmed."""
    reports = [(tenant_id, wamid, pricing) for tenant_id, wamid, pricing in reports
               if isinstance(pricing, dict) and isinstance(wamid, str) and len(wamid) <= 128]
    if not reports:
        return 0
    found = {(row.tenant_id, row.wa_message_id): row.id for row in conn.execute(
        select(Message.tenant_id, Message.id, Message.wa_message_id)
        .where(among(conn, Message.wa_message_id, sorted({wamid for _, wamid, _ in reports}))))}
    named = {}
    for tenant_id, wamid, pricing in reports:
        message_id = found.get((tenant_id, wamid))
        if message_id is not None:
            named.setdefault((tenant_id, message_id), pricing)  # the first report of a batch
    if not named:
        return 0
    estimate(conn, named)
    costs = conn.execute(select(MessageCost.tenant_id, MessageCost.message_id, MessageCost.sent_at, MessageCost.market,
                                MessageCost.card_id, MessageCost.tier, MessageCost.estimated_micros)
                         .where(MessageCost.tenant_id.in_(sorted({t for t, _ in named})),
                                among(conn, MessageCost.message_id, sorted(m for _, m in named)),
                                MessageCost.confirmed_at.is_(None))).all()
    prices, now, rows = Prices(conn), utcnow(), []
    prices.read_rates({(cost.card_id, cost.market) for cost in costs if cost.card_id is not None})
    for cost in costs:
        pricing = named.get((cost.tenant_id, cost.message_id))
        if pricing is None:
            continue
        category = _text(pricing.get("category"), CATEGORY_LENGTH)
        category = category.lower().replace("_", "-") if category else None
        billable = _billable(pricing)
        micros = None
        if billable is False:
            micros = 0
        elif billable and cost.card_id is not None:
            micros = prices.rate(cost.card_id, cost.market, category, cost.tier)
        difference = (micros - cost.estimated_micros
                      if micros is not None and cost.estimated_micros is not None else None)
        rows.append({"t": cost.tenant_id, "m": cost.message_id, "b_billable": billable, "b_category": category,
                     "b_kind": _text(pricing.get("type"), CONTEXT_LENGTH), "b_micros": micros,
                     "b_difference": difference, "b_at": now})
    if not rows:
        return 0
    rows.sort(key=lambda row: (row["t"], row["m"]))  # row locks in one order in every transaction
    return conn.execute(_CONFIRM, rows).rowcount
