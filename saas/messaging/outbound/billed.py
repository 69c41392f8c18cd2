"""What the rows say should be billed: the figures metering's usage is checked against (saas.metering.audit)."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import String, and_, cast, func, literal, select

from saas.billing.pricing import CONVERSATION, MESSAGE, METRIC_CONVERSATIONS, METRIC_MESSAGES, conversation_metric
from saas.messaging.models import Conversation, Message
from saas.metering.models import UsageRecord


def _billed(kind: str, row_id):
    """The row's usage record (its billable unit, named "<kind>:<id>"), while not voided."""
    return and_(UsageRecord.tenant_id == (Conversation.tenant_id if kind == CONVERSATION else Message.tenant_id),
                UsageRecord.subject == literal(f"{kind}:") + cast(row_id, String), UsageRecord.voided_at.is_(None))


def billed_units(session) -> dict[tuple, dict[str, int]]:
    """Every (tenant id, period start)'s units as its messages and windows stand for them. Read-only.

    What is billed: every metered message not failed, whether the send path
    failed it (WhatsApp refused, recovery settled it) or WhatsApp reported it
    failed afterwards (a ``failed`` status un-bills it, once); every window
    its plan billed that stands, which a message that went out (or was
    already decided for Stripe) keeps open; and every message a per-message
    plan billed, unless un-billed. So messages not failed are the
    ``messages`` metric; billed windows are ``conversations`` and each
    category's metric; billed messages each ``messages.<category>`` metric.
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
    return expected
