"""The back office's answers as plain data: frozen copies of the rows it read, safe to keep after the session.

Each record names the fields the console shows; ``of(row)`` copies them from
a model row (or anything with those attributes).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from saas.billing.models import PlanRules

PAGE_SIZE = 50


class Record:
    @classmethod
    def of(cls, row):
        return cls(**cls.values(row))

    @classmethod
    def values(cls, row) -> dict:
        return {f.name: getattr(row, f.name) for f in fields(cls)}


@dataclass(frozen=True)
class TenantFacts(Record):
    id: int
    name: str
    slug: str
    status: str
    created_at: datetime
    stripe_customer_id: str | None


@dataclass(frozen=True)
class PlanFacts(PlanRules, Record):
    """A plan's terms; features in the plan's own order (pages list them so)."""

    id: int
    code: str
    name: str
    active: bool
    price_cents: int
    currency: str
    interval: str
    included_conversations: int
    overage_cents: Decimal | None
    rate_limit_per_minute: int
    phone_numbers_allowed: int
    features: tuple
    billing_unit: str
    included_messages: int
    message_categories: tuple
    max_contacts: int | None = None
    max_broadcast_recipients: int | None = None
    consent_managed_by_tenant: bool = False

    @classmethod
    def of(cls, row):
        values = cls.values(row)
        return cls(**{**values, "features": tuple(values["features"] or ()),
                      "billing_unit": values["billing_unit"] or "conversations",
                      "included_messages": values["included_messages"] or 0,
                      "message_categories": tuple(values["message_categories"] or ())})


@dataclass(frozen=True)
class SubscriptionFacts(Record):
    plan_id: int
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    past_due_since: datetime | None
    cancel_at_period_end: bool
    trial_end: datetime | None
    stripe_subscription_id: str | None
    stripe_price_id: str | None
    stripe_metered_item_id: str | None


@dataclass(frozen=True)
class StripeEventFacts(Record):
    id: str
    type: str
    created: datetime
    processed_at: datetime | None
    attempts: int
    outcome: str | None
    error: str | None


@dataclass(frozen=True)
class UserFacts(Record):
    email: str
    role: str
    last_login_at: datetime | None


@dataclass(frozen=True)
class NumberFacts(Record):
    display_number: str
    phone_number_id: str
    mode: str


@dataclass(frozen=True)
class AuditFacts(Record):
    id: int
    tenant_id: int | None
    created_at: datetime
    actor: str
    action: str
    summary: str


def maybe(record: type[Record], row):
    """``record.of(row)``, or None for no row."""
    return None if row is None else record.of(row)


@dataclass(frozen=True)
class Page:
    items: list
    number: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.number > 1


def paged(rows: list, number: int, size: int = PAGE_SIZE) -> Page:
    """A page of ``rows`` fetched with one more than ``size``: that one only says a next page exists."""
    return Page(rows[:size], number, len(rows) > size)
