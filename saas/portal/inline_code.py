"""Inline code in reference text: `spans` between backticks become <code>, everything else is escaped."""
from __future__ import annotations

import re

from markupsafe import Markup, escape

# One line at most, and never empty: an unpaired backtick stays a backtick.
SPAN = re.compile(r"`([^`\n]+)`")


def inline_code(text) -> Markup:
    """``text`` as safe HTML: its backtick spans as <code>, the rest (markup included) escaped."""
    if text is None:
        return Markup("")
    parts = SPAN.split(str(text))
    # split() alternates: text, code, text, code, ..., text.
    return Markup("").join(Markup("<code>{}</code>").format(part) if index % 2 else escape(part)
                           for index, part in enumerate(parts))
