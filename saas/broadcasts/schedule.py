"""When a broadcast starts: a wall-clock time in the tenant's time zone (an IANA name, read with
zoneinfo), kept as written and as the UTC instant it names, and the next run of a recurring one.

A recurring broadcast keeps its wall-clock time across daylight-saving changes: the next run is the
same local time a day (or a week) later, converted with that day's offset. A local time that does not
exist (skipped when clocks go forward) is taken with the offset before the change, so it runs an hour
later on the wall clock; one that happens twice (clocks go back) runs at its first occurrence.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
STEP = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


class ScheduleInvalid(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def zone(name) -> ZoneInfo:
    """The time zone named ``name``; ScheduleInvalid when there is none."""
    if not isinstance(name, str) or len(name) > 64 or not ZONE.match(name):
        raise ScheduleInvalid("timezone", "An IANA time zone name, e.g. Europe/Istanbul.")
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, or a name zoneinfo refuses to look up
        raise ScheduleInvalid("timezone", "An IANA time zone name, e.g. Europe/Istanbul.") from None


def parse_local(value) -> datetime:
    """A wall-clock time as the tenant writes it ("2026-03-29T09:00"), without offset."""
    if not isinstance(value, str) or not LOCAL.match(value):
        raise ScheduleInvalid("at", "A local date and time, YYYY-MM-DDTHH:MM, in the broadcast's time zone.")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleInvalid("at", "Not a date and time that exists.") from None


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant (naive, as stored) of the wall-clock ``local`` in ``tz``."""
    return local.replace(tzinfo=tz, fold=0).astimezone(timezone.utc).replace(tzinfo=None)


def next_local(local: datetime, recurrence: str) -> datetime:
    """The wall-clock time of the run after ``local`` (same time of day, a day or a week on)."""
    return local + STEP[recurrence]


def local_text(local: datetime) -> str:
    return local.strftime("%Y-%m-%dT%H:%M:%S")
