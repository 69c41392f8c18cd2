"""CSV answers of any size in flat memory, and cells a spreadsheet shows but never runs.

Every export (contacts, an import's refused rows, a broadcast's recipients, messages, usage, orders) writes
through ``stream``: rows come from a keyset walk or a server-side cursor a batch at a time, and leave as
text chunks of one batch each, so neither the rows nor the text are ever held whole.
"""
from __future__ import annotations

import csv
import io
from itertools import islice
from typing import Iterable, Iterator

BATCH = 1000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP's list): such
# text is written after an apostrophe, which spreadsheets show as text and hide.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value) -> str:
    """A cell's text as a spreadsheet shows it and never runs it. Numbers (negative ones too) stay numbers,
    booleans read ``true``/``false``, None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def text_of(rows: Iterable[Iterable]) -> str:
    """``rows`` as CSV text (CRLF line ends, RFC 4180), every cell made inert."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([inert(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def stream(header: Iterable[str], rows: Iterable[Iterable], *, batch: int = BATCH) -> Iterator[str]:
    """The CSV text of ``header`` then ``rows``, a chunk per ``batch`` rows (the header alone first, so an
    answer starts before the first query returns)."""
    yield text_of([header])
    rows = iter(rows)
    while True:
        chunk = list(islice(rows, batch))
        if not chunk:
            return
        yield text_of(chunk)


def flatten(batches: Iterable[Iterable]) -> Iterator:
    """The rows of ``batches`` (lists of rows, as a keyset walk yields them) one by one."""
    for rows in batches:
        yield from rows
