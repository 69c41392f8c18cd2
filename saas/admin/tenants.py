"""How the console's tenant pages read their input and show what tenants wrote.

What they show is read by the back office (saas.back_office.tenants); here
are only the face's parts: a page number from the query string, and names
with their bidi controls taken out.
"""
from __future__ import annotations

import re

from saas.ids import parse_id

# Bidi embeddings, overrides and isolates, and the implicit marks: they can make a name read as another.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_bidi(text) -> str:
    """``text`` with its bidi control characters removed (it is still escaped when shown)."""
    return BIDI_CONTROLS.sub("", "" if text is None else str(text))


def page_number(raw) -> int:
    """``?page=`` as a page number: 1 for anything that is not a positive whole number."""
    return parse_id(raw) or 1
