"""The sandbox's delivery receipts, run as a background job after the response."""
from __future__ import annotations

from datetime import timedelta

from saas.messaging.statuses import StatusUpdate, apply_status_batch
from saas.timeutil import utcnow

WALK = ("sent", "delivered", "read")


def walk_statuses(tenant_id: int, wa_message_id: str) -> None:
    """Mark a sandbox message sent, delivered and read, as a real handset would."""
    walk_many([(tenant_id, wa_message_id)])


def walk_many(messages: list[tuple[int, str]]) -> None:
    """The walk for many messages in one transaction."""
    now = utcnow()
    apply_status_batch([
        StatusUpdate(tenant_id, wamid, status, now + timedelta(milliseconds=offset))
        for tenant_id, wamid in messages
        for offset, status in enumerate(WALK)])


walk_statuses.batch = walk_many
