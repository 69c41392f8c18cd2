"""A recipient's pricing market: the region ``phonenumbers`` gives its number, mapped to Meta's market by
data/rates/markets.csv (region, market, effective_from; ``*`` for every region the file does not list)."""
from __future__ import annotations

import csv
import os
import re
from datetime import date
from functools import lru_cache

import phonenumbers

MARKETS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "data", "rates", "markets.csv")
ANY_REGION = "*"


def market_key(name: str) -> str:
    """A market's name as the webhooks spell regions: "Rest of Central & Eastern Europe" and
    "REST_OF_CENTRAL_EASTERN_EUROPE" are one key."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


@lru_cache(maxsize=4)
def mapping(path: str = MARKETS_FILE) -> dict[str, list[tuple[date, str]]]:
    """region -> [(effective_from, market)], latest first (read once per process)."""
    found: dict[str, list[tuple[date, str]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            found.setdefault(row["region"].strip().upper(), []).append(
                (date.fromisoformat(row["effective_from"].strip()), row["market"].strip()))
    for dated in found.values():
        dated.sort(reverse=True)
    return found


def region_of(wa_id: str) -> str | None:
    """The region of a WhatsApp id's number (its country code's main region when phonenumbers does not know
    the number itself), or None when it is no phone number."""
    digits = "".join(ch for ch in str(wa_id or "") if ch.isascii() and ch.isdigit())
    if not digits or len(digits) > 17:
        return None
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    return (phonenumbers.region_code_for_number(number)
            or phonenumbers.region_code_for_country_code(number.country_code) or None)


def market_for_region(region: str | None, on: date, *, path: str = MARKETS_FILE) -> str | None:
    """The market ``region`` belongs to on ``on`` (None before the mapping's first date)."""
    table = mapping(path)
    for key in ((region or "").upper(), ANY_REGION):
        for effective_from, market in table.get(key, ()):
            if effective_from <= on:
                return market
    return None


def market_of(wa_id: str, on: date, *, path: str = MARKETS_FILE) -> str | None:
    """The market a message to ``wa_id`` sent on ``on`` is priced in."""
    return market_for_region(region_of(wa_id), on, path=path)
