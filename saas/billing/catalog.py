"""The platform's default plans, written by ``flask seed``."""
from __future__ import annotations

from sqlalchemy import select

from saas.billing.models import Plan
from saas.extensions import db

DEFAULT_PLANS = (
    {
        "code": "free",
        "name": "Free",
        "description": "Try the API on a sandbox number. Text messages only, hard monthly cap.",
        "price_cents": 0,
        "included_conversations": 250,
        "overage_cents": None,
        "rate_limit_per_minute": 60,
        "phone_numbers_allowed": 1,
        "features": ["text"],
        "sort_order": 0,
    },
    {
        "code": "starter",
        "name": "Starter",
        "description": "One live number, templates and media, webhooks.",
        "price_cents": 2900,
        "included_conversations": 1000,
        "overage_cents": 5,
        "rate_limit_per_minute": 300,
        "phone_numbers_allowed": 1,
        "features": ["text", "template", "media", "webhooks"],
        "sort_order": 10,
    },
    {
        "code": "pro",
        "name": "Pro",
        "description": "Interactive messages, broadcasts, several numbers, analytics export.",
        "price_cents": 9900,
        "included_conversations": 5000,
        "overage_cents": 4,
        "rate_limit_per_minute": 1000,
        "phone_numbers_allowed": 5,
        "features": ["text", "template", "media", "interactive", "broadcast", "webhooks",
                     "multi_number", "analytics_export"],
        "sort_order": 20,
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "description": "High volume with the lowest overage price.",
        "price_cents": 49900,
        "included_conversations": 50000,
        "overage_cents": 3,
        "rate_limit_per_minute": 6000,
        "phone_numbers_allowed": 25,
        "features": ["text", "template", "media", "interactive", "broadcast", "webhooks",
                     "multi_number", "analytics_export"],
        "sort_order": 30,
    },
)


def seed_plans() -> list[str]:
    """Create the default plans that do not exist yet; returns the codes created.

    Safe to run any number of times: an existing plan (perhaps edited by an
    admin) is left exactly as it is.
    """
    existing = set(db.session.scalars(select(Plan.code)))
    created = []
    for spec in DEFAULT_PLANS:
        if spec["code"] in existing:
            continue
        db.session.add(Plan(currency="usd", interval="month", active=True, **spec))
        created.append(spec["code"])
    db.session.commit()
    return created


def active_plans() -> list[Plan]:
    return list(db.session.scalars(
        select(Plan).where(Plan.active.is_(True)).order_by(Plan.sort_order, Plan.id)))


def plan_by_code(code: str) -> Plan | None:
    return db.session.scalar(select(Plan).where(Plan.code == code))


def overage_lookup_key(code: str) -> str:
    """The metered price's lookup key; the flat price's is the plan code itself."""
    return f"{code}_overage"


def plan_for_price(price_id: str | None = None, lookup_key: str | None = None) -> Plan | None:
    """The plan a Stripe price belongs to: by its id (current or metered), else by its lookup key.

    Archived plans are found too: their subscribers keep them.
    """
    if price_id:
        plan = db.session.scalar(select(Plan).where(
            (Plan.stripe_price_id == price_id) | (Plan.stripe_metered_price_id == price_id)))
        if plan is not None:
            return plan
    if lookup_key:
        code = lookup_key[: -len("_overage")] if lookup_key.endswith("_overage") else lookup_key
        return plan_by_code(code)
    return None
