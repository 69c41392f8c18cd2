"""An order's state machine: requested (a WhatsApp cart) -> created -> paid -> packed -> shipped ->
out_for_delivery -> delivered, with cancelled (before delivery) and refunded (at any point) branches.

Pure: ``decide(current, recorded, event)`` says what an event does to an order. Events come more than
once and out of order (shops retry webhooks, several systems write), so an event is applied only when it
moves the order forward: one already reached, or older than the state the order is in, changes nothing.
An event that skips states is applied as it is (a ``shipped`` straight after ``created``).
"""
from __future__ import annotations

REQUESTED = "requested"
CREATED = "created"
PAID = "paid"
PACKED = "packed"
SHIPPED = "shipped"
OUT_FOR_DELIVERY = "out_for_delivery"
DELIVERED = "delivered"
CANCELLED = "cancelled"
REFUNDED = "refunded"

# The main line, in order.
LINE = (REQUESTED, CREATED, PAID, PACKED, SHIPPED, OUT_FOR_DELIVERY, DELIVERED)
STATES = LINE + (CANCELLED, REFUNDED)
# What the API and shops may send (``requested`` is a WhatsApp cart's own state).
EVENTS = STATES[1:]
RANK = {state: rank for rank, state in enumerate(LINE)}

APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
NOT_ALLOWED = "not_allowed"

WHY = {
    APPLIED: "The order moved to this state.",
    DUPLICATE: "The order already reached this state: nothing changed and nothing was sent.",
    STALE: "The order is past this state already: nothing changed and nothing was sent.",
    NOT_ALLOWED: "The order cannot take this state from the one it is in: nothing changed and nothing was sent.",
}


def decide(current: str | None, recorded: set[str], event: str) -> str:
    """What ``event`` does to an order in state ``current`` (None: no order yet) that reached ``recorded``."""
    if current is None:
        return APPLIED
    if event == current or event in recorded:
        return DUPLICATE
    if current == REFUNDED:
        return STALE if event in RANK or event == CANCELLED else NOT_ALLOWED
    if event == REFUNDED:
        return APPLIED
    if current == CANCELLED:
        return STALE if event in RANK else NOT_ALLOWED
    if event == CANCELLED:
        return NOT_ALLOWED if current == DELIVERED else APPLIED
    return APPLIED if RANK[event] > RANK[current] else STALE
