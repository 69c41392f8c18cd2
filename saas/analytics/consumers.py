"""The roll-ups' consumer of messaging's domain events (found by saas.events.discover): each batch's settled
sends and statuses bring their messages' shares of the daily roll-ups up to date, in sets, in the delivering
transaction (saas.analytics.shares). Every tenant's, whatever its plan: the pages are on every plan.

The costs' consumer is subscribed first (imported here before this one subscribes), so a message's estimate
or confirmation written by the same batch is in the share this one reads.
"""
from __future__ import annotations

from saas import events
from saas.analytics.shares import add_shares
from saas.costs import consumers as _costs  # noqa: F401  (subscribes the costs' consumers before this one)
from saas.messaging.domain_events import SEND_SETTLED, STATUS_CHANGED

# WhatsApp's message ids are at most this long (the column's bound): a longer one names no message.
WAMID_LENGTH = 128


def take(conn, batch) -> int:
    """The messages the batch names, by our id (settled sends) or WhatsApp's (statuses); how many shares
    changed. Idempotent: an event handed over again, or a status WhatsApp repeated, changes nothing."""
    by_id, by_wamid = set(), set()
    for event in batch:
        if event.type == SEND_SETTLED:
            message_id = event.payload.get("message_id")
            if isinstance(message_id, int) and not isinstance(message_id, bool):
                by_id.add((event.tenant_id, message_id))
        elif event.type == STATUS_CHANGED:
            wamid = event.payload.get("wa_message_id")
            if isinstance(wamid, str) and 0 < len(wamid) <= WAMID_LENGTH:
                by_wamid.add((event.tenant_id, wamid))
    return add_shares(conn, by_id, by_wamid)


events.subscribe((SEND_SETTLED, STATUS_CHANGED), take, name="analytics.rollups")
