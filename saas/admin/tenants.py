"""How the console's tenant pages read their input and show what tenants wrote.

What they show is read by the back office (saas.back_office.tenants); here
are only the face's parts: names with their bidi controls taken out (page
numbers from the query string are saas.ids.page_number).
"""
from __future__ import annotations

import re

# Bidi embeddings, overrides and isolates, and the implicit marks: they can make a name read as another.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_bidi(text) -> str:
    """``text`` with its bidi control characters removed (it is still escaped when shown)."""
    return BIDI_CONTROLS.sub("", "" if text is None else str(text))
