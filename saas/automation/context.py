"""What rules read besides the message, the same for live messages and for replay: the tenant's enabled
rules, its settings, its numbers' hours, whether a message is the contact's first, the contact's labels."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select

from saas.automation.hours import HoursInvalid, hours_of, zone
from saas.automation.models import (
    DEFAULT_REPLIES_PER_HOUR, DEFAULT_TIMEZONE, FEATURE, BusinessHours, Rule, Settings,
)
from saas.billing.models import Plan, Subscription
from saas.contacts.models import Contact, ContactLabel
from saas.messaging.models import Message

# Subscriptions whose plan's rights have fallen back to the free plan's (saas.billing.entitlements).
LAPSED = ("unpaid", "canceled", "incomplete_expired")


def with_automation(conn, tenant_ids) -> set[int]:
    """The tenants among ``tenant_ids`` subscribed to a plan with automation that has not lapsed. Read on
    ``conn`` alone: a consumer runs with no app context."""
    if not tenant_ids:
        return set()
    rows = conn.execute(select(Subscription.tenant_id, Subscription.status, Plan.features)
                        .join(Plan, Plan.id == Subscription.plan_id)
                        .where(Subscription.tenant_id.in_(sorted(tenant_ids)))).all()
    return {tenant_id for tenant_id, status, features in rows
            if FEATURE in (features or ()) and status not in LAPSED}


def enabled_rules(session, tenant_id: int) -> list:
    """The tenant's enabled rules in the order they run."""
    return list(session.scalars(select(Rule).where(Rule.tenant_id == tenant_id, Rule.enabled.is_(True))
                                .order_by(Rule.priority, Rule.id)))


class TenantSetting:
    """A tenant's time zone and hourly cap as matching reads them."""

    def __init__(self, conn, tenant_id: int):
        row = conn.execute(select(Settings.timezone, Settings.replies_per_hour)
                           .where(Settings.tenant_id == tenant_id)).first()
        name = row.timezone if row else DEFAULT_TIMEZONE
        try:
            self.zone = zone(name)
        except HoursInvalid:
            self.zone = ZoneInfo("UTC")
        self.timezone = name
        self.replies_per_hour = row.replies_per_hour if row else DEFAULT_REPLIES_PER_HOUR
        self._conn, self._tenant_id, self._hours = conn, tenant_id, {}

    def hours(self, number_pk: int):
        if number_pk not in self._hours:
            row = self._conn.execute(select(BusinessHours).where(
                BusinessHours.tenant_id == self._tenant_id, BusinessHours.phone_number_id == number_pk)).first()
            self._hours[number_pk] = hours_of(row[0] if row else None, self.timezone)
        return self._hours[number_pk]


def first_from_contact(conn, tenant_id: int, number_pk: int, wa_id: str, wa_message_id: str) -> bool:
    """Whether no inbound message from ``wa_id`` to the number came before this one (by our ids, the order
    they were stored in)."""
    this = conn.execute(select(Message.id).where(Message.wa_message_id == wa_message_id,
                                                 Message.tenant_id == tenant_id)).scalar()
    earlier = select(Message.id).where(Message.tenant_id == tenant_id, Message.phone_number_id == number_pk,
                                       Message.wa_id == wa_id, Message.direction == "in",
                                       Message.wa_message_id != wa_message_id)
    if this is not None:
        earlier = earlier.where(Message.id < this)
    return conn.execute(earlier.limit(1)).first() is None


def labels_of(conn, tenant_id: int, wa_id: str) -> frozenset:
    rows = conn.execute(select(ContactLabel.label).join(Contact, Contact.id == ContactLabel.contact_id).where(
        Contact.tenant_id == tenant_id, Contact.wa_id == wa_id, ContactLabel.tenant_id == tenant_id)).scalars()
    return frozenset(rows)
