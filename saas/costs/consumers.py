"""The costs' consumers of messaging's domain events (found by saas.events.discover): a send settled as
accepted is estimated and a status carrying WhatsApp's ``pricing`` object confirms its message's cost (once
a rate card is stored), and an ``account_update`` with a volume tier is recorded. Each takes its batch in
sets, on the delivering connection alone (no app context), and is idempotent: an event handed over again
changes nothing."""
from __future__ import annotations

from sqlalchemy import select

from saas import cache, events
from saas.costs import estimates, tiers
from saas.costs.models import RateCard
from saas.messaging.domain_events import ACCOUNT_UPDATED, SEND_SETTLED, STATUS_CHANGED

# Whether any rate card is stored (a card written in this process empties it at once: saas.cache.watch).
_CARDS = cache.SnapshotCache(5.0)
cache.watch(RateCard)


def priced(conn, tenant_ids) -> set[int]:
    """Every tenant once a rate card is stored; none before (nothing to price: no event is written for it,
    so a deployment without cards pays nothing on the send path)."""
    stored = _CARDS.peek("any")
    if stored is None:
        stored = conn.execute(select(RateCard.id).limit(1)).first() is not None
        _CARDS.put("any", stored)
    return set(tenant_ids) if stored else set()


def take(conn, batch) -> int:
    """Estimates for accepted sends, then confirmations from statuses: each kind in one set. (An event written
    for another consumer reaches this one too: it takes only what ``priced`` wants.)"""
    served = priced(conn, {event.tenant_id for event in batch})
    batch = [event for event in batch if event.tenant_id in served]
    settled = [(event.tenant_id, event.payload.get("message_id")) for event in batch
               if event.type == SEND_SETTLED and event.payload.get("outcome") == "accepted"]
    done = estimates.estimate(conn, [pair for pair in settled if isinstance(pair[1], int)])
    reports = []
    for event in batch:
        if event.type == STATUS_CHANGED:
            status = event.payload.get("object")
            if isinstance(status, dict) and isinstance(status.get("pricing"), dict):
                reports.append((event.tenant_id, event.payload.get("wa_message_id"), status["pricing"]))
    return done + estimates.confirm(conn, reports)


def take_tiers(conn, batch) -> int:
    """Volume tiers from account updates, whether or not a card is stored yet (a card may follow)."""
    rows = [tiers.tier_of(event.tenant_id, event.payload.get("waba_id"), event.payload.get("value"))
            for event in batch]
    return tiers.record_tiers(conn, [row for row in rows if row is not None])


events.subscribe((SEND_SETTLED, STATUS_CHANGED), take, name="costs.messages", serves=priced)
events.subscribe(ACCOUNT_UPDATED, take_tiers, name="costs.tiers")
