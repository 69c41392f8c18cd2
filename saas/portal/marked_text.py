"""Plain text made safe HTML for the pages, with some of its runs marked: `spans` between backticks in
reference text become <code>; in table cells, a run of characters without spaces longer than any ordinary
word (an email, a URL, a key, an id) goes in <span class="token">, which may break anywhere (app.css)."""
from __future__ import annotations

import re

from markupsafe import Markup, escape

# One line at most, and never empty: an unpaired backtick stays a backtick.
SPAN = re.compile(r"`([^`\n]+)`")
# Longer than English's long words ("internationalization" has 20 letters).
LONGEST_WORD = 20
TOKEN = re.compile(r"(\S{%d,})" % (LONGEST_WORD + 1))


def _marked(text, pattern: re.Pattern, tag: Markup) -> Markup:
    """``text`` escaped, each match of ``pattern``'s one group put in ``tag`` (a format with one {})."""
    if text is None:
        return Markup("")
    parts = pattern.split(str(text))
    # split() with a group alternates: text, match, text, match, ..., text.
    return Markup("").join(tag.format(part) if index % 2 else escape(part) for index, part in enumerate(parts))


def inline_code(text) -> Markup:
    """``text`` as safe HTML: its backtick spans as <code>, the rest (markup included) escaped."""
    return _marked(text, SPAN, Markup("<code>{}</code>"))


def breakable(text) -> Markup:
    """``text`` (plain text) escaped, with its long tokens marked as breakable."""
    return _marked(text, TOKEN, Markup('<span class="token">{}</span>'))
