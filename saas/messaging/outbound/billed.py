"""What the rows say should be billed: the figures metering's usage is checked against (saas.metering.audit)."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from saas.messaging.models import Conversation, Message
from saas.metering.models import METRIC_CONVERSATIONS, METRIC_MESSAGES, category_metric


def billed_units(session) -> dict[tuple, dict[str, int]]:
    """Every (tenant id, period start)'s units as its messages and windows stand for them. Read-only.

    What is billed: every metered message not failed, whether the send path
    failed it (WhatsApp refused, recovery settled it) or WhatsApp reported it
    failed afterwards (a ``failed`` status un-bills it, once); and every
    window standing, which a message that went out (or was already decided
    for Stripe) keeps open. So messages not failed are the ``messages``
    metric; windows are ``conversations`` and each category's metric.
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
        .group_by(Conversation.tenant_id, Conversation.period_start, Conversation.category))
    for tenant_id, period_start, category, n in windows:
        expected[(tenant_id, period_start)][METRIC_CONVERSATIONS] += n
        expected[(tenant_id, period_start)][category_metric(category)] += n
    return expected
