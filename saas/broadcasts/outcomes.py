"""What a send's result means for its recipient: sent, failed, skipped, unknown, or queued again later.

WhatsApp's codes decide the retries: 130429 (throughput) and 131056 (pair rate) back off and try
again; 131049 (Meta's per-user marketing limit) is tried once more a day later, and only when the
broadcast opted in; 131050 (the user stopped marketing) skips the recipient; 131026 and 131047, like
every other refusal, are final. A send whose answer was lost after it left (a timeout, a dropped
connection, WhatsApp's own 131000) is ``unknown``: never sent again by itself; a status webhook
settles it later (saas.broadcasts.consumers).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from saas.broadcasts.models import FAILED, QUEUED, SENT, SKIPPED, UNKNOWN
from saas.database import DatabaseUnavailable
from saas.errors import UpstreamError, UpstreamTimeout, WhatsAppRule

BACK_OFF = (130429, 131056)
PER_USER_LIMIT = 131049
STOPPED_MARKETING = 131050
MESSAGING_LIMIT = 131048
UNANSWERED = 131000
MAX_ATTEMPTS = 8
LONGEST_BACK_OFF = timedelta(minutes=15)
PER_USER_WAIT = timedelta(hours=24)
# The consent check on the send path (a refusal of a marketing template): the recipient is skipped.
CONSENT_CODES = ("consent_required", "opted_out")  # saas.errors: ConsentRequired, OptedOut


@dataclass(frozen=True)
class Outcome:
    status: str
    error_code: str | None = None
    error_title: str | None = None
    skip_reason: str | None = None
    next_attempt_at: datetime | None = None
    message_id: int | None = None
    wa_message_id: str | None = None


def back_off(attempts: int) -> timedelta:
    """The wait before try ``attempts + 1``: 2, 4, 8 ... seconds, at most LONGEST_BACK_OFF."""
    return min(timedelta(seconds=2 ** max(attempts, 1)), LONGEST_BACK_OFF)


def whatsapp_code(error) -> int | None:
    """WhatsApp's code of a refusal (Meta's own, or ours where we refuse as WhatsApp would)."""
    if isinstance(error, (UpstreamError, WhatsAppRule)):
        return error.graph_code
    return None


def of_refusal(error, message_id: int | None, attempts: int, retry_daily: bool, earlier_code: str | None,
               now: datetime) -> Outcome:
    """The outcome of a send refused with ``error`` (an ApiError), after ``attempts`` tries."""
    code = whatsapp_code(error)
    title = (error.message or "")[:300]
    if isinstance(error, DatabaseUnavailable) and message_id is not None:
        # WhatsApp took it; only our record of its answer was lost.
        return Outcome(SENT, message_id=message_id)
    if message_id is not None and (isinstance(error, UpstreamTimeout) or code == UNANSWERED):
        return Outcome(UNKNOWN, str(code or UNANSWERED), title, message_id=message_id)
    if error.code in CONSENT_CODES:
        return Outcome(SKIPPED, error.code, title, skip_reason="opted_out" if error.code == "opted_out" else
                       "no_opt_in")
    if code == STOPPED_MARKETING:
        return Outcome(SKIPPED, str(code), title, skip_reason="opted_out", message_id=message_id)
    if code in BACK_OFF and attempts < MAX_ATTEMPTS:
        return Outcome(QUEUED, str(code), title, next_attempt_at=now + back_off(attempts))
    if code == MESSAGING_LIMIT and attempts < MAX_ATTEMPTS:
        wait = _retry_after(error) or timedelta(hours=1)
        return Outcome(QUEUED, str(code), title, next_attempt_at=now + wait)
    if code == PER_USER_LIMIT and retry_daily and earlier_code != str(PER_USER_LIMIT):
        return Outcome(QUEUED, str(code), title, next_attempt_at=now + PER_USER_WAIT)
    return Outcome(FAILED, str(code) if code is not None else error.code, title, message_id=message_id)


def _retry_after(error) -> timedelta | None:
    value = (error.headers or {}).get("Retry-After")
    try:
        return timedelta(seconds=max(int(value), 1)) if value is not None else None
    except (TypeError, ValueError):
        return None
