"""The figures of the analytics pages and the API, read from the daily roll-ups alone (never the message
rows: a range of a tenant with millions of messages is a few thousand roll-up rows), every query scoped to
the tenant; and the plan's usage with its projection to the end of the billing period."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select

from saas.analytics.models import AMOUNTS, COUNTS, DailyFailures, DailyFigures
from saas.analytics.ranges import DayRange
from saas.metering.services import UsageSummary

_SUMS = tuple(func.sum(getattr(DailyFigures, name)) for name in (*COUNTS, *AMOUNTS))


@dataclass
class Figures:
    """Counts, and costs per currency in millionths (only currencies some message was priced in)."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    conversations: int = 0
    confirmed: int = 0
    estimated_micros: dict = field(default_factory=dict)
    confirmed_micros: dict = field(default_factory=dict)
    cost_micros: dict = field(default_factory=dict)

    def add(self, currency: str, sums) -> None:
        values = dict(zip((*COUNTS, *AMOUNTS), (int(value or 0) for value in sums)))
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + values[name])
        if currency:
            for name in AMOUNTS:
                amounts = getattr(self, name)
                amounts[currency] = amounts.get(currency, 0) + values[name]

    def merge(self, other: "Figures") -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in AMOUNTS:
            mine = getattr(self, name)
            for currency, micros in getattr(other, name).items():
                mine[currency] = mine.get(currency, 0) + micros


@dataclass
class CostLine:
    category: str
    market: str
    currency: str
    figures: Figures


@dataclass
class Report:
    range: DayRange
    cells: dict        # (day, number pk) -> Figures
    failures: dict     # (day, number pk) -> {code: n}
    costs: list        # CostLine, by category then market
    totals: Figures = field(default_factory=Figures)

    def by_day(self) -> list[tuple[date, Figures]]:
        days = {day: Figures() for day in self.range.days}
        for (day, _), figures in self.cells.items():
            days[day].merge(figures)
        return sorted(days.items())

    def by_number(self) -> dict[int, Figures]:
        numbers: dict[int, Figures] = defaultdict(Figures)
        for (_, number), figures in self.cells.items():
            numbers[number].merge(figures)
        return dict(numbers)

    def failure_codes(self) -> list[tuple[int, int]]:
        codes: dict[int, int] = defaultdict(int)
        for counts in self.failures.values():
            for code, n in counts.items():
                codes[code] += n
        return sorted(codes.items(), key=lambda item: (-item[1], item[0]))


def _scoped(statement, table, tenant_id: int, days: DayRange, number_pk: int | None):
    statement = statement.where(table.tenant_id == tenant_id, table.day >= days.start, table.day <= days.end)
    return statement if number_pk is None else statement.where(table.phone_number_id == number_pk)


def report(session, tenant_id: int, days: DayRange, number_pk: int | None = None) -> Report:
    """The tenant's figures over ``days`` (of one of its numbers, by our id, when given): three queries."""
    cells: dict = defaultdict(Figures)
    rows = session.execute(_scoped(
        select(DailyFigures.day, DailyFigures.phone_number_id, DailyFigures.currency, *_SUMS),
        DailyFigures, tenant_id, days, number_pk)
        .group_by(DailyFigures.day, DailyFigures.phone_number_id, DailyFigures.currency))
    totals = Figures()
    for day, number, currency, *sums in rows:
        cells[(day, number)].add(currency, sums)
        totals.add(currency, sums)
    costs = []
    rows = session.execute(_scoped(
        select(DailyFigures.category, DailyFigures.market, DailyFigures.currency, *_SUMS),
        DailyFigures, tenant_id, days, number_pk)
        .group_by(DailyFigures.category, DailyFigures.market, DailyFigures.currency)
        .order_by(DailyFigures.category, DailyFigures.market, DailyFigures.currency))
    for category, market, currency, *sums in rows:
        line = CostLine(category, market, currency, Figures())
        line.figures.add(currency, sums)
        costs.append(line)
    failures: dict = defaultdict(dict)
    rows = session.execute(_scoped(
        select(DailyFailures.day, DailyFailures.phone_number_id, DailyFailures.error_code,
               func.sum(DailyFailures.failed)), DailyFailures, tenant_id, days, number_pk)
        .group_by(DailyFailures.day, DailyFailures.phone_number_id, DailyFailures.error_code))
    for day, number, code, n in rows:
        if n:
            failures[(day, number)][code] = int(n)
    return Report(days, dict(cells), dict(failures), costs, totals)


@dataclass(frozen=True)
class Projection:
    usage: UsageSummary
    projected: int   # units at the period's end, if the pace so far holds
    elapsed: float   # the share of the period gone, 0..1


def project(usage: UsageSummary, now: datetime) -> Projection:
    """A linear projection of the period's usage to its end, from the pace since it began."""
    length = (usage.period.end - usage.period.start).total_seconds()
    gone = min(max((now - usage.period.start).total_seconds(), 0.0), length)
    if length <= 0 or gone <= 0:
        return Projection(usage, usage.used, 0.0)
    return Projection(usage, round(usage.used * length / gone), gone / length)


def cost_text(micros: int, currency: str) -> str:
    """An amount in millionths as the currency's units, to four places, as Meta's cards write rates."""
    return f"{currency} {micros / 1_000_000:,.4f}"
