"""The time range of an export: ``from`` and ``to`` as dates or ISO 8601 instants, checked and bounded.

A date ``to`` takes in that whole day; an instant ``to`` is the first moment left out (as Stripe's invoice
line periods end). Without ``to`` the range ends now; without ``from`` it starts DEFAULT_DAYS before ``to``.
No range is longer than MAX_DAYS, so no request reads more than a year of rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from saas.errors import InvalidRequest
from saas.timeutil import iso, utcnow

DEFAULT_DAYS = 30
MAX_DAYS = 366
# Longer than any ISO 8601 date or instant with a zone: a longer value names none.
MAX_LENGTH = 40
EARLIEST = datetime(2000, 1, 1)
DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Range:
    """[start, end) in naive UTC, as the DateTime columns hold it."""

    start: datetime
    end: datetime

    def query(self) -> dict[str, str]:
        """The range as query parameters that name it exactly (for links)."""
        return {"from": iso(self.start), "to": iso(self.end)}


def _instant(raw: str, *, end: bool) -> datetime | None:
    """The naive-UTC moment ``raw`` names (a date's start, or for an end date the next day's), or None."""
    if not raw or len(raw) > MAX_LENGTH or not raw.isascii():
        return None
    try:
        if DATE_ONLY.fullmatch(raw):
            moment = datetime.combine(date.fromisoformat(raw), time())
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return moment


def parse(args) -> Range:
    """The range ``args`` (a mapping of query parameters) ask for. Raises InvalidRequest with per-field
    details for a value that names no date, a range that ends before it starts or spans more than MAX_DAYS."""
    raw_from, raw_to = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    errors: dict[str, str] = {}
    end = _instant(raw_to, end=True) if raw_to else utcnow().replace(microsecond=0) + timedelta(seconds=1)
    start = _instant(raw_from, end=False) if raw_from else None
    if end is None:
        errors["to"] = "A date (YYYY-MM-DD) or an ISO 8601 time (2026-01-31T00:00:00Z)."
    if raw_from and start is None:
        errors["from"] = "A date (YYYY-MM-DD) or an ISO 8601 time (2026-01-01T00:00:00Z)."
    if errors:
        raise InvalidRequest("The export's range is not understood.", details=errors)
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start < EARLIEST:
        raise InvalidRequest("The export's range starts too early.",
                             details={"from": f"From {EARLIEST.date().isoformat()} on."})
    if start >= end:
        raise InvalidRequest("The export's range ends before it starts.", details={"to": "After `from`."})
    if end - start > timedelta(days=MAX_DAYS):
        raise InvalidRequest(f"An export spans at most {MAX_DAYS} days.",
                             details={"to": f"At most {MAX_DAYS} days after `from`."})
    return Range(start, end)


def flag(args, name: str) -> bool:
    """A yes/no query parameter: ``1``/``true`` yes, absent/``0``/``false`` no. Raises InvalidRequest."""
    raw = (args.get(name) or "").strip().lower()
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise InvalidRequest(f"`{name}` is 1 or 0.", details={name: "1 or 0."})
