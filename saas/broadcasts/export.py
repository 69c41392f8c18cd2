"""A broadcast's recipients and their outcomes as CSV, read a page at a time (never held whole)."""
from __future__ import annotations

import csv
import io

from saas.broadcasts import services
from saas.timeutil import iso

COLUMNS = ("recipient_id", "contact_id", "wa_id", "status", "skip_reason", "error_code", "error_title", "attempts",
           "wa_message_id", "sent_at", "delivered_at", "read_at", "failed_at")
PAGE = 1000


def _safe(value) -> str:
    """A cell as text a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def row(recipient) -> list[str]:
    return [_safe(v) for v in (
        recipient.id, recipient.contact_id, recipient.wa_id, recipient.status, recipient.skip_reason,
        recipient.error_code, recipient.error_title, recipient.attempts, recipient.wa_message_id,
        iso(recipient.sent_at), iso(recipient.delivered_at), iso(recipient.read_at), iso(recipient.failed_at))]


def lines(tenant, broadcast_id, *, status: str | None = None):
    """The CSV text, header first, in chunks of up to PAGE recipients (for a streamed answer)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    after = 0
    while True:
        page = services.recipients(tenant, broadcast_id, status=status, after=after, limit=PAGE)
        for recipient in page:
            writer.writerow(row(recipient))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < PAGE:
            return
        after = page[-1].id
