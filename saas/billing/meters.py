"""Our Billing Meters on Stripe: one per priced unit, conversations or messages, each with its own event
name (STRIPE_METER_EVENT_NAME, STRIPE_MESSAGES_METER_EVENT_NAME) and shared by the plans that price it.

A plan's metered price counts its unit's meter (the catalogue sync, saas.billing.stripe_catalog); each
usage record's overage is sent under its unit's event name (saas.metering.reporting); and the usage
check compares each meter's summary with what was reported of its unit (saas.metering.reconciliation).
"""
from __future__ import annotations

from sqlalchemy import select

from saas.billing.models import UNIT_CONVERSATIONS, UNIT_MESSAGES, Plan
from saas.billing.stripe_calls import create, retrieve
from saas.extensions import db

# The settings that name each unit's meter event.
EVENT_NAME_SETTINGS = {UNIT_CONVERSATIONS: "STRIPE_METER_EVENT_NAME",
                       UNIT_MESSAGES: "STRIPE_MESSAGES_METER_EVENT_NAME"}
# What each meter counts, as Stripe's Dashboard names it (customers never see it).
DISPLAY_NAMES = {UNIT_CONVERSATIONS: "WhatsApp conversations past the plan's included ones",
                 UNIT_MESSAGES: "WhatsApp messages of priced categories past the plan's included ones"}
# The keys of a meter event's payload (the overage reporter sends the same).
CUSTOMER_KEY = "stripe_customer_id"
VALUE_KEY = "value"


def event_names(config) -> dict[str, str]:
    """Priced unit -> the event name of its meter, from the settings."""
    return {unit: config[setting] for unit, setting in EVENT_NAME_SETTINGS.items()}


def plan_unit(plan) -> str:
    """The unit ``plan`` prices, whose meter its metered price counts."""
    return UNIT_MESSAGES if plan.per_message else UNIT_CONVERSATIONS


class MeterSync:
    """The meters of one catalogue sync: each unit's meter is found (by the ids stored on the plans, else
    by its event name) or created, reactivated when deactivated, and looked up once per run."""

    def __init__(self, client, names: dict[str, str]):
        self.client = client
        self.event_names = names
        self._meters: dict[str, dict] = {}
        self._retrieved: dict[str, dict | None] = {}

    def of_unit(self, unit: str, stored_id: str | None, changes) -> dict:
        """The active meter of ``unit``'s event name; ``changes`` (stripe_catalog.Changes) hears what was done."""
        event_name = self.event_names[unit]
        if event_name not in self._meters:
            self._meters[event_name] = self._find_or_create(unit, event_name, stored_id, changes)
        return self._meters[event_name]

    def _find_or_create(self, unit: str, event_name: str, stored_id: str | None, changes) -> dict:
        meter = self._stored(event_name, stored_id) or self._listed(event_name, changes)
        if meter is None:
            meter = create(self.client.v1.billing.meters, {
                "display_name": DISPLAY_NAMES[unit], "event_name": event_name,
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"type": "by_id", "event_payload_key": CUSTOMER_KEY},
                "value_settings": {"event_payload_key": VALUE_KEY},
            }, f"meter-{event_name}")
            changes.add("created", f"meter {meter['id']} (event {event_name})")
        if meter.get("status", "active") != "active":
            # A deactivated meter keeps its event name and takes no prices: bring it back.
            meter = self.client.v1.billing.meters.reactivate(meter["id"]).to_dict()
            changes.add("reactivated", f"meter {meter['id']}")
        return meter

    def _stored(self, event_name: str, stored_id: str | None) -> dict | None:
        """The meter of ``event_name`` among those the plans hold (the plan's own first)."""
        known = [stored_id] + list(db.session.scalars(
            select(Plan.stripe_meter_id).where(Plan.stripe_meter_id.is_not(None)).distinct()))
        for meter_id in dict.fromkeys(m for m in known if m):
            if meter_id not in self._retrieved:
                self._retrieved[meter_id] = retrieve(self.client.v1.billing.meters, meter_id)
            candidate = self._retrieved[meter_id]
            if candidate is not None and candidate.get("event_name") == event_name:
                return candidate
        return None

    def _listed(self, event_name: str, changes) -> dict | None:
        # Meters have no metadata and no filter by event name: list them all.
        for candidate in self.client.v1.billing.meters.list(params={"limit": 100}).auto_paging_iter():
            if candidate["event_name"] == event_name:
                changes.add("found", f"meter {candidate['id']} (event {event_name})")
                return candidate.to_dict()
        return None
