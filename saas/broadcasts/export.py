"""A broadcast's recipients and their outcomes as CSV (saas.csv_stream), read a page at a time (never held
whole)."""
from __future__ import annotations

from saas.broadcasts import services
from saas.csv_stream import BATCH, flatten, stream
from saas.timeutil import iso

COLUMNS = ("recipient_id", "contact_id", "wa_id", "status", "skip_reason", "error_code", "error_title", "attempts",
           "wa_message_id", "sent_at", "delivered_at", "read_at", "failed_at")


def row(recipient) -> tuple:
    return (recipient.id, recipient.contact_id, recipient.wa_id, recipient.status, recipient.skip_reason,
            recipient.error_code, recipient.error_title, recipient.attempts, recipient.wa_message_id,
            iso(recipient.sent_at), iso(recipient.delivered_at), iso(recipient.read_at), iso(recipient.failed_at))


def _pages(tenant, broadcast_id, status: str | None):
    after = 0
    while True:
        page = services.recipients(tenant, broadcast_id, status=status, after=after, limit=BATCH)
        yield [row(recipient) for recipient in page]
        if len(page) < BATCH:
            return
        after = page[-1].id


def lines(tenant, broadcast_id, *, status: str | None = None):
    """The CSV text, header first, in chunks of up to BATCH recipients (for a streamed answer)."""
    return stream(COLUMNS, flatten(_pages(tenant, broadcast_id, status)))
