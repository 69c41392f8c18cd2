"""How long automation's runs are kept. A run is one rule on one inbound message; once it is settled (its
reply sent or failed, its actions done, or held back by a loop guard) it serves only the hourly cap (the
last hour) and the once-per-rule-and-message rule (WhatsApp redelivers a notification for up to 7 days):
settled runs older than ``AUTOMATION_RUN_RETENTION_DAYS`` are deleted by every process's housekeeping, a
bounded batch at a time. What a run did stays in its thread's log (saas.inbox) and its reply in the
messages; a run still waiting to be sent is never deleted."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from saas.automation.models import DONE, FAILED, SENT, SKIPPED, Run
from saas.timeutil import utcnow

SETTLED = (SENT, FAILED, DONE, SKIPPED)


def prune(session, *, keep: timedelta, now: datetime | None = None, limit: int = 5000) -> int:
    """Delete up to ``limit`` settled runs made before ``keep`` ago, oldest first; how many. Commits."""
    cutoff = (now or utcnow()) - keep
    ids = (select(Run.id).where(Run.status.in_(SETTLED), Run.created_at < cutoff)
           .order_by(Run.id).limit(limit).scalar_subquery())
    deleted = session.execute(delete(Run).where(Run.id.in_(ids)).execution_options(
        synchronize_session=False)).rowcount
    session.commit()
    return deleted
