"""The costs' consumers of messaging's domain events (found by saas.events.discover): a send settled as
accepted is estimated, a status carrying WhatsApp's ``pricing`` object confirms its message's cost, and an
``account_update`` with a volume tier is recorded. Each takes its batch in sets, on the delivering
connection alone (no app context), and is idempotent: an event handed over again changes nothing."""
from __future__ import annotations

from saas import events
from saas.costs import estimates, tiers
from saas.messaging.domain_events import ACCOUNT_UPDATED, SEND_SETTLED, STATUS_CHANGED


def take(conn, batch) -> int:
    """Estimates for accepted sends, then confirmations from statuses, then tiers: each kind in one set."""
    settled = [(event.tenant_id, event.payload.get("message_id")) for event in batch
               if event.type == SEND_SETTLED and event.payload.get("outcome") == "accepted"]
    done = estimates.estimate(conn, [pair for pair in settled if isinstance(pair[1], int)])
    reports = []
    for event in batch:
        if event.type == STATUS_CHANGED:
            status = event.payload.get("object")
            if isinstance(status, dict) and isinstance(status.get("pricing"), dict):
                reports.append((event.tenant_id, event.payload.get("wa_message_id"), status["pricing"]))
    done += estimates.confirm(conn, reports)
    rows = [tiers.tier_of(event.tenant_id, event.payload.get("waba_id"), event.payload.get("value"))
            for event in batch if event.type == ACCOUNT_UPDATED]
    return done + tiers.record_tiers(conn, [row for row in rows if row is not None])


events.subscribe((SEND_SETTLED, STATUS_CHANGED, ACCOUNT_UPDATED), take, name="costs.messages")
