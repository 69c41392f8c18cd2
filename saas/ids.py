"""Row ids: 64-bit wherever a table grows with traffic, and the one bound every id input is checked against."""
from __future__ import annotations

from sqlalchemy import BigInteger, Integer

# Ids are signed 64-bit integers; anything larger (or not positive) names no row.
MAX_ID = 2**63 - 1

# BIGINT on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit and only
# that spelling makes it the rowid alias that numbers rows by itself.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def parse_id(raw) -> int | None:
    """``raw`` as a row id, or None when it cannot name a row."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
            return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if 0 < value <= MAX_ID else None


def page_number(raw) -> int:
    """``?page=`` as a page number: 1 for anything that is not a positive whole number."""
    return parse_id(raw) or 1
