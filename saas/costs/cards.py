"""Rate cards and charging rules read from CSV files in the layout of Meta's published card, checked row by
row, and stored as dated data (``flask rates load`` / ``flask rates rules``, the admin console's upload).

A card file: ``# key: value`` comment lines (``source``, ``effective``), then the columns ``market, currency,
marketing, utility, authentication, authentication-international, service, tier``; one row per market and
tier (an empty tier: the list rate; ``LOW:HIGH``: a volume tier, as account_update's ``volume_tier_info``
names it). A rules file: the same comment lines, then ``category, context, charged``.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import delete, select

from saas.costs.models import (CATEGORY_LENGTH, LIST_TIER, MARKET_LENGTH, SOURCE_LENGTH, TIER_LENGTH, ChargingRule,
                               Rate, RateCard)
from saas.text import problem
from saas.timeutil import utcnow

# Meta's pricing categories, as its card's columns and the status webhook's pricing.category name them.
CATEGORIES = ("marketing", "utility", "authentication", "authentication-international", "service")
CARD_COLUMNS = ("market", "currency", *CATEGORIES, "tier")
# Where a message is sent, as the rules name it.
CONTEXTS = ("inside_window", "outside_window", "free_entry_point")
ANY = "*"
RULE_COLUMNS = ("category", "context", "charged")
CHARGED = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
TIER = re.compile(r"\d{1,12}:\d{0,12}")
CURRENCY = re.compile(r"[A-Z]{3}")
RATE = re.compile(r"\d{1,6}(\.\d{1,6})?")
# Enough to say what is wrong with a file without burying it.
MAX_ERRORS = 20
MAX_ROWS = 5000


class CardError(Exception):
    """A file refused: ``errors`` says why, one sentence per bad row (``line N: ...``)."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class Parsed:
    header: dict[str, str] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def refuse(self, line: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"line {line}: {message}")


def _read(text: str, columns: tuple[str, ...]) -> tuple[Parsed, list[tuple[int, dict]]]:
    parsed = Parsed()
    if problem(text, allow="\r\n\t"):
        parsed.errors.append("the file holds control characters: it is not a CSV text file")
        return parsed, []
    lines = text.splitlines()
    body: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            if value and key.strip().lower() in ("source", "effective"):
                parsed.header[key.strip().lower()] = value.strip()
        elif line.strip():
            body.append((number, line))
    if not body:
        parsed.errors.append("the file has no header row: expected " + ", ".join(columns))
        return parsed, []
    reader = csv.reader(line for _, line in body)
    try:
        header = [name.strip().lower() for name in next(reader)]
        if tuple(header) != columns:
            parsed.refuse(body[0][0], "the columns must be " + ", ".join(columns) + ", got " + ", ".join(header)[:200])
            return parsed, []
        rows = []
        for (number, _), cells in zip(body[1:], reader):
            if len(cells) != len(columns):
                parsed.refuse(number, f"{len(cells)} cells where the header has {len(columns)}")
                continue
            rows.append((number, dict(zip(columns, (cell.strip() for cell in cells)))))
    except csv.Error as exc:
        parsed.errors.append(f"not a CSV file: {exc}")
        return parsed, []
    if len(rows) > MAX_ROWS:
        parsed.errors.append(f"{len(rows)} rows: a card has at most {MAX_ROWS}")
        return parsed, []
    return parsed, rows


def _effective(parsed: Parsed, effective: date | None) -> date | None:
    if effective is not None:
        return effective
    try:
        return date.fromisoformat(parsed.header.get("effective", ""))
    except ValueError:
        parsed.errors.append("no effective date: give one (YYYY-MM-DD) or a '# effective: YYYY-MM-DD' line")
        return None


def _source(parsed: Parsed, source: str | None) -> str | None:
    source = (source or parsed.header.get("source") or "").strip()
    if problem(source):
        parsed.errors.append("the source holds control characters")
        return None
    if not source:
        parsed.errors.append("the file names no source: add a '# source: ...' line saying where the rates come from")
        return None
    return source[:SOURCE_LENGTH]


def _micros(value: str) -> int | None:
    if not RATE.fullmatch(value):
        return None
    try:
        return int(Decimal(value) * 1_000_000)
    except InvalidOperation:
        return None


def parse_card(text: str, *, effective: date | None = None, source: str | None = None) -> tuple[dict, list[dict]]:
    """The card (effective_from, currency, source) and its rates (market, category, tier, rate_micros) in
    ``text``; raises CardError listing every bad row (up to MAX_ERRORS)."""
    parsed, rows = _read(text, CARD_COLUMNS)
    effective_from = _effective(parsed, effective)
    source = _source(parsed, source)
    currencies, seen, rates = set(), set(), []
    for number, row in rows:
        market, tier = row["market"], row["tier"]
        if not market or len(market) > MARKET_LENGTH or problem(market):
            parsed.refuse(number, f"market must be 1 to {MARKET_LENGTH} printable characters")
            continue
        if not CURRENCY.fullmatch(row["currency"]):
            parsed.refuse(number, f"currency {row['currency'][:20]!r} is not a three-letter code such as USD")
            continue
        currencies.add(row["currency"])
        if tier and (len(tier) > TIER_LENGTH or not TIER.fullmatch(tier)):
            parsed.refuse(number, f"tier {tier[:50]!r} is not a volume range such as 1000001:5000000")
            continue
        if (market, tier) in seen:
            parsed.refuse(number, f"{market}{' tier ' + tier if tier else ''} is listed twice")
            continue
        seen.add((market, tier))
        for category in CATEGORIES:
            value = row[category]
            if not value:
                continue
            micros = _micros(value)
            if micros is None:
                parsed.refuse(number, f"{category} {value[:30]!r} is not a rate (a number such as 0.0113)")
                continue
            rates.append({"market": market, "category": category, "tier": tier or LIST_TIER, "rate_micros": micros})
    if len(currencies) > 1:
        parsed.errors.append("a card has one currency; this file has " + ", ".join(sorted(currencies)))
    if not rows and not parsed.errors:
        parsed.errors.append("the file lists no market")
    if parsed.errors:
        raise CardError(parsed.errors)
    return {"effective_from": effective_from, "currency": currencies.pop(), "source": source}, rates


def load_card(session, text: str, *, effective: date | None = None, source: str | None = None,
              filename: str | None = None, uploaded_by: str | None = None) -> RateCard:
    """Store the card in ``text``, replacing a card of the same date. Commits; raises CardError (nothing
    stored) for a bad file."""
    card, rates = parse_card(text, effective=effective, source=source)
    try:
        session.execute(delete(RateCard).where(RateCard.effective_from == card["effective_from"]))
        row = RateCard(**card, filename=(filename or "")[:200] or None, uploaded_by=(uploaded_by or "")[:255] or None,
                       uploaded_at=utcnow())
        session.add(row)
        session.flush()
        session.execute(Rate.__table__.insert(), [{"card_id": row.id, **rate} for rate in rates])
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return row


def parse_rules(text: str, *, effective: date | None = None, source: str | None = None) -> tuple[date, str, list]:
    """A rule set's date, source and rules (category, context, charged); raises CardError for bad rows."""
    parsed, rows = _read(text, RULE_COLUMNS)
    effective_from = _effective(parsed, effective)
    source = _source(parsed, source)
    rules, seen = [], set()
    for number, row in rows:
        category, context, charged = row["category"].lower(), row["context"].lower(), row["charged"].lower()
        if category not in (*CATEGORIES, ANY):
            parsed.refuse(number, f"category {row['category'][:40]!r} is none of {', '.join(CATEGORIES)} or *")
        elif context not in (*CONTEXTS, ANY):
            parsed.refuse(number, f"context {row['context'][:40]!r} is none of {', '.join(CONTEXTS)} or *")
        elif charged not in CHARGED:
            parsed.refuse(number, f"charged {row['charged'][:20]!r} is neither yes nor no")
        elif (category, context) in seen:
            parsed.refuse(number, f"{category} / {context} is listed twice")
        else:
            seen.add((category, context))
            rules.append({"category": category[:CATEGORY_LENGTH], "context": context, "charged": CHARGED[charged]})
    if not rows and not parsed.errors:
        parsed.errors.append("the file lists no rule")
    if parsed.errors:
        raise CardError(parsed.errors)
    return effective_from, source, rules


def load_rules(session, text: str, *, effective: date | None = None, source: str | None = None) -> int:
    """Store the rule set in ``text`` (replacing one of the same date); how many rules. Commits; raises
    CardError for a bad file."""
    effective_from, source, rules = parse_rules(text, effective=effective, source=source)
    try:
        session.execute(delete(ChargingRule).where(ChargingRule.effective_from == effective_from))
        session.execute(ChargingRule.__table__.insert(),
                        [{"effective_from": effective_from, "source": source, **rule} for rule in rules])
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(rules)


def cards(session) -> list[RateCard]:
    """Every card, newest first."""
    return list(session.scalars(select(RateCard).order_by(RateCard.effective_from.desc())))
