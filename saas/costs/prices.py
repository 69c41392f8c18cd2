"""What the stored cards and rules say of a message: the card in force on a day, whether its category is
charged in its context under the rule set in force, and its rate at a volume tier. Read in sets: one
``Prices`` per batch of messages, a few statements whatever its size."""
from __future__ import annotations

from bisect import bisect_right
from datetime import date

from sqlalchemy import select, tuple_

from saas.costs.cards import ANY
from saas.costs.models import LIST_TIER, ChargingRule, Rate, RateCard


class Prices:
    """The cards and rules as stored when built, and the rates of the (card, market) pairs asked for."""

    def __init__(self, conn):
        self.conn = conn
        cards = conn.execute(select(RateCard.effective_from, RateCard.id, RateCard.currency)
                             .order_by(RateCard.effective_from)).all()
        self._card_dates = [row[0] for row in cards]
        self._cards = [(row[1], row[2]) for row in cards]
        rules = conn.execute(select(ChargingRule.effective_from, ChargingRule.category, ChargingRule.context,
                                    ChargingRule.charged)).all()
        sets: dict[date, dict] = {}
        for effective_from, category, context, charged in rules:
            sets.setdefault(effective_from, {})[(category, context)] = charged
        self._rule_dates = sorted(sets)
        self._rule_sets = [sets[day] for day in self._rule_dates]
        self._rates: dict[tuple, int] = {}
        self._read: set[tuple] = set()

    def card_on(self, day: date) -> tuple[int, str] | None:
        """(card id, currency) of the card in force on ``day``, or None before the first card."""
        at = bisect_right(self._card_dates, day)
        return self._cards[at - 1] if at else None

    def card_date(self, day: date) -> date | None:
        """The date from which the card in force on ``day`` holds, or None before the first card."""
        at = bisect_right(self._card_dates, day)
        return self._card_dates[at - 1] if at else None

    def charged(self, day: date, category: str | None, context: str) -> bool | None:
        """Whether the rule set in force on ``day`` charges ``category`` in ``context``: the rule naming the
        context exactly before one for any context, then the category exactly before any. None: no rule."""
        at = bisect_right(self._rule_dates, day)
        if not at:
            return None
        rules = self._rule_sets[at - 1]
        for key in ((category, context), (ANY, context), (category, ANY), (ANY, ANY)):
            if key in rules:
                return rules[key]
        return None

    def read_rates(self, pairs) -> None:
        """Read the rates of ``pairs`` (card id, market) not read yet, in one statement."""
        wanted = sorted({pair for pair in pairs if pair[1] is not None} - self._read)
        if not wanted:
            return
        for card_id, market, category, tier, micros in self.conn.execute(
                select(Rate.card_id, Rate.market, Rate.category, Rate.tier, Rate.rate_micros)
                .where(tuple_(Rate.card_id, Rate.market).in_(wanted))):
            self._rates[(card_id, market, category, tier)] = micros
        self._read.update(wanted)  # remembered as read, even with no rates

    def rate(self, card_id: int, market: str, category: str | None, tier: str = LIST_TIER) -> int | None:
        """The rate (micros) of ``category`` to ``market`` under the card at ``tier``, else its list rate;
        None when the card has neither. Call ``read_rates`` for the pair first."""
        found = self._rates.get((card_id, market, category, tier))
        if found is None and tier != LIST_TIER:
            found = self._rates.get((card_id, market, category, LIST_TIER))
        return found
