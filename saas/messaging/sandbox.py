"""The sandbox's delivery receipts, run as a background job."""
from __future__ import annotations

from datetime import timedelta

from saas.messaging.statuses import apply_statuses
from saas.timeutil import utcnow


def walk_statuses(tenant_id: int, wa_message_id: str) -> None:
    """Mark a sandbox message sent, delivered and read, as a real handset would."""
    now = utcnow()
    apply_statuses(tenant_id, wa_message_id, [
        (status, now + timedelta(milliseconds=offset))
        for offset, status in enumerate(("sent", "delivered", "read"))])
