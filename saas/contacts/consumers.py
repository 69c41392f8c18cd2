"""Contacts' consumers of domain events (found by saas.events.discover)."""
from __future__ import annotations

from saas import events
from saas.contacts import inbound
from saas.messaging.domain_events import MESSAGE_RECEIVED

# Whoever writes to a tenant's number becomes (or stays) its contact: every tenant's, every plan's.
events.subscribe(MESSAGE_RECEIVED, inbound.record_senders, name="contacts.inbound")
