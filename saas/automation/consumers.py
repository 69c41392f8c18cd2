"""Automation's consumer of ``message.received`` (found by saas.events.discover): the tenant's rules run on
each inbound message in the delivering transaction (saas.automation.engine); the replies they queue are sent
once it commits (saas.automation.sending)."""
from __future__ import annotations

from saas import events
from saas.automation import engine, sending
from saas.automation.context import with_automation
from saas.messaging.domain_events import MESSAGE_RECEIVED


def take(conn, batch) -> int:
    due = engine.handle(conn, batch)
    sending.remember(due)
    return len(due)


events.subscribe(MESSAGE_RECEIVED, take, name="automation.rules", serves=with_automation)
