"""Business hours: when a number is open, in the tenant's time zone (an IANA name, read with zoneinfo).

A week of opening spans per day (Monday is 0; a day with none is closed) and holidays (closed all day).
Whether a moment is inside them is decided on the wall clock of the tenant's zone at that moment, so
"09:00-17:00" stays 09:00-17:00 local across a daylight-saving change. A span ending at "24:00" runs to
midnight; spans never cross midnight (write two).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SPANS_PER_DAY = 4
HOLIDAYS_MAX = 100


class HoursInvalid(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def zone(name) -> ZoneInfo:
    """The time zone named ``name``; HoursInvalid when there is none."""
    if not isinstance(name, str) or len(name) > 64 or not ZONE.match(name):
        raise HoursInvalid("timezone", "An IANA time zone name, e.g. Europe/Berlin.")
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, or a name zoneinfo refuses to look up
        raise HoursInvalid("timezone", "An IANA time zone name, e.g. Europe/Berlin.") from None


def minutes(clock: str) -> int:
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def clock_of(value, field: str) -> str:
    if not isinstance(value, str) or not CLOCK.match(value):
        raise HoursInvalid(field, "A time of day as HH:MM (00:00 to 24:00).")
    return value


def checked_weekly(weekly) -> dict[str, list[list[str]]]:
    """The week as stored: {"0": [["09:00", "17:00"]], ...}; HoursInvalid naming the bad field."""
    if not isinstance(weekly, dict) or len(weekly) > 7:
        raise HoursInvalid("weekly", "An object of weekdays (0 Monday to 6 Sunday) to lists of [open, close].")
    week = {}
    for day, spans in weekly.items():
        if str(day) not in {str(n) for n in range(7)}:
            raise HoursInvalid("weekly", "Weekdays are 0 (Monday) to 6 (Sunday).")
        if not isinstance(spans, list) or len(spans) > SPANS_PER_DAY:
            raise HoursInvalid(f"weekly.{day}", f"At most {SPANS_PER_DAY} spans of [open, close].")
        kept = []
        for span in spans:
            if not isinstance(span, (list, tuple)) or len(span) != 2:
                raise HoursInvalid(f"weekly.{day}", "Each span is [open, close] as HH:MM.")
            start, end = clock_of(span[0], f"weekly.{day}"), clock_of(span[1], f"weekly.{day}")
            if minutes(start) >= minutes(end):
                raise HoursInvalid(f"weekly.{day}", "A span closes after it opens (write two across midnight).")
            kept.append([start, end])
        if kept:
            week[str(day)] = sorted(kept)
    return week


def checked_holidays(holidays) -> list[str]:
    if not isinstance(holidays, list) or len(holidays) > HOLIDAYS_MAX:
        raise HoursInvalid("holidays", f"A list of at most {HOLIDAYS_MAX} dates (YYYY-MM-DD).")
    days = set()
    for value in holidays:
        try:
            if not isinstance(value, str) or not DAY.match(value):
                raise ValueError
            days.add(date.fromisoformat(value).isoformat())
        except ValueError:
            raise HoursInvalid("holidays", "Each holiday is a date, YYYY-MM-DD.") from None
    return sorted(days)


@dataclass(frozen=True)
class Hours:
    """A number's hours as matching reads them."""

    zone: ZoneInfo
    weekly: dict
    holidays: frozenset

    def local(self, at: datetime) -> datetime:
        """``at`` (naive UTC, as the database keeps times) on the tenant's wall clock."""
        return at.replace(tzinfo=timezone.utc).astimezone(self.zone)

    def open_at(self, at: datetime) -> bool:
        """Whether the number is open at ``at`` (naive UTC)."""
        local = self.local(at)
        if local.date().isoformat() in self.holidays:
            return False
        now = local.hour * 60 + local.minute
        return any(minutes(start) <= now < minutes(end) for start, end in self.weekly.get(str(local.weekday()), ()))


def hours_of(row, timezone_name: str) -> Hours | None:
    """The ``BusinessHours`` row as matching reads it (None: the number has no hours set)."""
    if row is None:
        return None
    try:
        tz = zone(timezone_name)
    except HoursInvalid:
        tz = ZoneInfo("UTC")
    return Hours(tz, row.weekly or {}, frozenset(row.holidays or ()))


def in_window(local: datetime, start: str, end: str) -> bool:
    """Whether the wall-clock ``local`` is between ``start`` and ``end`` (a window may cross midnight)."""
    now, lo, hi = local.hour * 60 + local.minute, minutes(start), minutes(end)
    return lo <= now < hi if lo <= hi else now >= lo or now < hi


def local_time(at: datetime, tz: ZoneInfo) -> datetime:
    return at.replace(tzinfo=timezone.utc).astimezone(tz)

