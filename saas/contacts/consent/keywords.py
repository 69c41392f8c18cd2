"""Consent keywords: a word a contact sends alone to opt out of (or back in to) a number's marketing.

A message matches when its whole text, trimmed, is one of the tenant's keywords, compared as
``normalised`` writes both: spaces collapsed, punctuation and symbols around it dropped ("Stop!" is STOP),
case folded with Turkish's dotted and dotless i taken as i (İPTAL, IPTAL, iptal, ıptal are one
word), and accents dropped (ABONELİKTEN ÇIK, abonelikten cik). A tenant with no keywords of its own
uses DEFAULTS; its own list replaces them whole, and an empty list restores them.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, select

from saas.contacts.models import OPTED_IN, OPTED_OUT, ConsentKeyword
from saas.text import problem

KEYWORD_LENGTH = 40
MAX_KEYWORDS = 50
# No keyword is longer than this once normalised: a longer message is never read further.
LONGEST_MESSAGE = 80

# English as carriers and WhatsApp platforms use them, and Turkish (RET is what Turkey's commercial
# message rules have recipients send).
DEFAULT_OPT_OUT = ("STOP", "STOP ALL", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPT OUT", "OPTOUT",
                   "STOP PROMOTIONS", "DUR", "İPTAL", "RET", "ABONELİKTEN ÇIK", "ABONELİĞİ İPTAL ET", "İSTEMİYORUM")
DEFAULT_OPT_IN = ("START", "UNSTOP", "SUBSCRIBE", "OPT IN", "BAŞLA", "ABONE OL")


@dataclass(frozen=True)
class Keyword:
    keyword: str   # as the tenant wrote it (shown back)
    action: str    # OPTED_OUT or OPTED_IN: the state it moves its sender to


DEFAULTS = tuple([Keyword(k, OPTED_OUT) for k in DEFAULT_OPT_OUT] + [Keyword(k, OPTED_IN) for k in DEFAULT_OPT_IN])

_TURKISH_I = str.maketrans({"İ": "i", "I": "i", "ı": "i"})


def normalised(text: str) -> str:
    """``text`` as keywords are compared (see the module): trimmed, one space between words, no punctuation
    around it, Turkish i's as i, case folded, accents dropped."""
    words = " ".join(text.split())
    while words and unicodedata.category(words[0])[0] in "PS":
        words = words[1:].lstrip()
    while words and unicodedata.category(words[-1])[0] in "PS":
        words = words[:-1].rstrip()
    folded = words.translate(_TURKISH_I).casefold()
    return "".join(ch for ch in unicodedata.normalize("NFKD", folded) if unicodedata.category(ch) != "Mn")


DEFAULT_ACTIONS = {normalised(k.keyword): k.action for k in DEFAULTS}


def keywords_of(session, tenant_id: int) -> tuple[list[Keyword], bool]:
    """The tenant's keywords, and whether they are the defaults (it has none of its own)."""
    rows = session.execute(select(ConsentKeyword.keyword, ConsentKeyword.action)
                           .where(ConsentKeyword.tenant_id == tenant_id).order_by(ConsentKeyword.id)).all()
    if not rows:
        return list(DEFAULTS), True
    return [Keyword(row.keyword, row.action) for row in rows], False


def actions_of(conn, tenant_ids) -> dict[int, dict[str, str]]:
    """Each tenant's keywords, normalised, with their action (the defaults' for a tenant with none); one query."""
    found: dict[int, dict[str, str]] = {}
    rows = conn.execute(select(ConsentKeyword.tenant_id, ConsentKeyword.keyword, ConsentKeyword.action)
                        .where(ConsentKeyword.tenant_id.in_(sorted(set(tenant_ids))))).all()
    for row in rows:
        found.setdefault(row.tenant_id, {})[normalised(row.keyword)] = row.action
    return {tenant_id: found.get(tenant_id, DEFAULT_ACTIONS) for tenant_id in tenant_ids}


def action_for(text, actions: dict[str, str]) -> str | None:
    """The state a message's ``text`` moves its sender to, by ``actions`` (see actions_of), or None."""
    if not isinstance(text, str) or not text or len(text) > LONGEST_MESSAGE:
        return None
    return actions.get(normalised(text))


class KeywordError(ValueError):
    """A keyword list that cannot be saved; ``field`` says which entry (``keywords[3]``), ``message`` why."""

    def __init__(self, message: str, field: str = "keywords"):
        super().__init__(message)
        self.message = message
        self.field = field


def checked(entries) -> list[Keyword]:
    """``entries`` ((keyword, action) pairs) as a list to save, or KeywordError: 1 to 40 characters each (no
    control characters), an action OPTED_OUT or OPTED_IN, at most MAX_KEYWORDS, no word twice (as normalised),
    and at least one opt-out keyword in a list that is not empty."""
    entries = list(entries)
    if len(entries) > MAX_KEYWORDS:
        raise KeywordError(f"At most {MAX_KEYWORDS} keywords.")
    kept, seen = [], {}
    for index, (keyword, action) in enumerate(entries):
        field = f"keywords[{index}]"
        if action not in (OPTED_OUT, OPTED_IN):
            raise KeywordError("The action must be opted_out or opted_in.", field)
        word = " ".join(keyword.split()) if isinstance(keyword, str) else ""
        why = problem(word) if word else "A keyword cannot be empty."
        if why is None and len(word) > KEYWORD_LENGTH:
            why = f"A keyword is at most {KEYWORD_LENGTH} characters."
        if why is None and not normalised(word):
            why = "A keyword needs a letter or a digit."
        if why is not None:
            raise KeywordError(why, field)
        key = normalised(word)
        if key in seen:
            raise KeywordError(f"{word!r} is in the list twice (as {seen[key]!r}).", field)
        seen[key] = word
        kept.append(Keyword(word, action))
    if kept and not any(k.action == OPTED_OUT for k in kept):
        raise KeywordError("Keep at least one opt-out keyword (or save an empty list for the defaults).")
    return kept


def replace_keywords(session, tenant_id: int, entries) -> list[Keyword]:
    """Make ``entries`` (checked as ``checked`` does; KeywordError otherwise) the tenant's keywords; an empty
    list restores the defaults. Returns the keywords in force. Flushes only."""
    kept = checked(entries)
    session.execute(delete(ConsentKeyword).where(ConsentKeyword.tenant_id == tenant_id))
    session.add_all([ConsentKeyword(tenant_id=tenant_id, keyword=k.keyword, action=k.action) for k in kept])
    session.flush()
    return kept or list(DEFAULTS)
