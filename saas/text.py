"""Text a tenant gives us (company, key and member names): what is refused, and how it is shown.

Refused on input: control characters (NUL breaks PostgreSQL text; others break
logs and headers) and the bidi controls that reorder what is around them (a
right-to-left override makes "Acme\u202egnp.exe" read as "Acmeexe.png").
Shown inert: text stored before this rule is displayed without them.
"""
from __future__ import annotations

import re
import unicodedata

from wtforms.validators import StopValidation

# Bidi embeddings, overrides and isolates, and the marks (ALM, LRM, RLM).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def problem(text: str | None, *, allow: str = "") -> str | None:
    """Why ``text`` cannot be stored as a name, or None."""
    for char in text or "":
        if char in allow:
            continue
        if unicodedata.category(char) == "Cc":
            return "Control characters (such as NUL or line breaks) are not allowed."
        if BIDI_CONTROLS.match(char):
            return "Text-direction control characters are not allowed."
        if unicodedata.category(char) == "Cs":
            return "The text is not valid Unicode."
    return None


def inert(text) -> str:
    """``text`` without bidi and control characters, for display (it is still HTML-escaped)."""
    text = "" if text is None else str(text)
    text = BIDI_CONTROLS.sub("", text)
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cs"))


def fit(text: str, limit: int, suffix: str = "") -> str:
    """``text`` + ``suffix`` in at most ``limit`` characters: the text is shortened, the suffix kept."""
    room = limit - len(suffix)
    if len(text) > room:
        text = text[: max(room - 1, 0)].rstrip() + "…"
    return text + suffix


class CleanText:
    """A WTForms validator: refuses control and bidi characters (``allow`` lists exceptions)."""

    def __init__(self, allow: str = ""):
        self.allow = allow

    def __call__(self, form, field):
        found = problem(field.data if isinstance(field.data, str) else None, allow=self.allow)
        if found:
            raise StopValidation(found)
