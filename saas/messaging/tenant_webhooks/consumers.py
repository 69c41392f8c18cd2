"""The tenant webhooks' consumers of domain events (found by saas.events.discover)."""
from __future__ import annotations

from saas import events
from saas.messaging.domain_events import MESSAGE_RECEIVED, STATUS_CHANGED
from saas.messaging.tenant_webhooks import forwarding

# Every status and inbound message of a tenant's numbers, to the tenant's own endpoint: for tenants
# that forward (an active endpoint, a plan with webhooks).
events.subscribe((MESSAGE_RECEIVED, STATUS_CHANGED), forwarding.forward, name="tenant_webhooks.forwarding",
                 serves=lambda conn, tenant_ids: forwarding.endpoints_for(conn, tenant_ids).keys())
