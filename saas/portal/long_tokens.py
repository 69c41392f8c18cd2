"""Long tokens in table cells: a run of characters without spaces longer than any ordinary word (an email, a
URL, a key, an id) goes in <span class="token">, which may break anywhere (app.css); ordinary words never do."""
from __future__ import annotations

import re

from markupsafe import Markup, escape

# Longer than English's long words ("internationalization" has 20 letters).
LONGEST_WORD = 20
TOKEN = re.compile(r"(\S{%d,})" % (LONGEST_WORD + 1))


def breakable(text) -> Markup:
    """``text`` (plain text) escaped, with its long tokens marked as breakable."""
    if text is None:
        return Markup("")
    parts = TOKEN.split(str(text))
    # split() with a group alternates: text, token, text, token, ..., text.
    return Markup("").join(Markup('<span class="token">{}</span>').format(part) if index % 2 else escape(part)
                           for index, part in enumerate(parts))
