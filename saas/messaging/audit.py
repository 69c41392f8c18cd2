"""Usage against the rows it stands for: the proof that metering counted each send once."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import String, and_, cast, func, literal, select

from saas.billing.pricing import CONVERSATION, MESSAGE, METRIC_CONVERSATIONS, METRIC_MESSAGES, conversation_metric
from saas.messaging.models import Conversation, Message
from saas.metering.models import UsageRecord
from saas.metering.services import Metering


def _billed(kind: str, row_id):
    """The row's usage record (its billable unit, named "<kind>:<id>"), while not voided."""
    return and_(UsageRecord.tenant_id == (Conversation.tenant_id if kind == CONVERSATION else Message.tenant_id),
                UsageRecord.subject == literal(f"{kind}:") + cast(row_id, String), UsageRecord.voided_at.is_(None))


def audit_usage(session) -> tuple[list[str], int]:
    """Compare every tenant's usage, period by period, with its messages and windows.

    What is billed: every metered message not failed, whether the send path
    failed it (WhatsApp refused, recovery settled it) or WhatsApp reported it
    failed afterwards (a ``failed`` status un-bills it, once); every window
    its plan billed that stands, which a message that went out (or was
    already decided for Stripe) keeps open; and every message a per-message
    plan billed, unless un-billed. So messages not failed must equal the
    ``messages`` metric; billed windows must equal ``conversations`` and each
    category's metric; billed messages each ``messages.<category>`` metric.
    Returns (the differences found, how many figures were checked). Read-only.
    """
    expected: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sent = session.execute(
        select(Message.tenant_id, Message.period_start, func.count())
        .where(Message.direction == "out", Message.status != "failed", Message.period_start.is_not(None))
        .group_by(Message.tenant_id, Message.period_start))
    for tenant_id, period_start, n in sent:
        expected[(tenant_id, period_start)][METRIC_MESSAGES] += n
    windows = session.execute(
        select(Conversation.tenant_id, Conversation.period_start, Conversation.category, func.count())
        .join(UsageRecord, _billed(CONVERSATION, Conversation.id))
        .group_by(Conversation.tenant_id, Conversation.period_start, Conversation.category))
    for tenant_id, period_start, category, n in windows:
        expected[(tenant_id, period_start)][METRIC_CONVERSATIONS] += n
        expected[(tenant_id, period_start)][conversation_metric(category)] += n
    billed = session.execute(
        select(Message.tenant_id, Message.period_start, UsageRecord.metric, func.count())
        .join(UsageRecord, _billed(MESSAGE, Message.id))
        .group_by(Message.tenant_id, Message.period_start, UsageRecord.metric))
    for tenant_id, period_start, metric, n in billed:
        expected[(tenant_id, period_start)][metric] += n

    metering = Metering()
    conn = session.connection()
    periods = set(expected) | set(metering.periods(conn))
    problems, checked = [], 0
    for tenant_id, period_start in sorted(periods):
        actual = metering.usage_for(conn, tenant_id, period_start)
        wanted = expected.get((tenant_id, period_start), {})
        for metric in sorted(set(actual) | set(wanted)):
            checked += 1
            if actual.get(metric, 0) != wanted.get(metric, 0):
                problems.append(f"tenant {tenant_id} period {period_start:%Y-%m-%d} {metric}: "
                                f"usage {actual.get(metric, 0)}, rows {wanted.get(metric, 0)}")
    session.rollback()
    return problems, checked
