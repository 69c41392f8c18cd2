"""The date range an analytics page or call asks for: ``from`` and ``to`` (UTC days, YYYY-MM-DD, both
included), by default the last 30 days; at most MAX_DAYS days."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

MAX_DAYS = 366
DEFAULT_DAYS = 30
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RangeError(ValueError):
    """A range that cannot be read; ``details`` maps each parameter to its problems."""

    def __init__(self, details: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(problems)}" for name, problems in details.items()))
        self.details = details


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date  # included

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def _day(raw, name: str, details: dict) -> date | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _DAY.match(raw):
        details[name] = ["Not a date: YYYY-MM-DD."]
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        details[name] = ["Not a day of the calendar."]
        return None


def parse_range(raw_from, raw_to, today: date) -> DayRange:
    """The range ``from``..``to`` asks for (either may be empty: ``to`` defaults to today, ``from`` to
    DEFAULT_DAYS before ``to``). Raises RangeError."""
    details: dict[str, list[str]] = {}
    start, end = _day(raw_from, "from", details), _day(raw_to, "to", details)
    if details:
        raise RangeError(details)
    end = end or (today if start is None or start <= today else start)
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise RangeError({"from": ["Must be on or before 'to'."]})
    if (end - start).days + 1 > MAX_DAYS:
        raise RangeError({"to": [f"The range is more than {MAX_DAYS} days long."]})
    return DayRange(start, end)
