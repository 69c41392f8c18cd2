"""The plan catalogue: the default plans written by ``flask seed``, finding plans, and the
admin's changes to them (create, edit, archive). Syncing them to Stripe is in stripe_catalog."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from saas.audit import services as audit
from saas.billing.models import Plan, Subscription
from saas.billing.money import plain_decimal
from saas.extensions import db

FREE_CODE = "free"
# Every Stripe object we make carries metadata {"app": APP, ...} naming us.
APP = "relay"
# The terms Stripe holds (product name and description, the prices, the meter the metered price
# counts: its unit's): changing one makes the plan "not synced" until the next sync.
STRIPE_TERMS = ("name", "description", "price_cents", "currency", "interval", "billing_unit", "overage_cents",
                "active")
# What an admin may change on a plan (its code is fixed: Stripe's lookup keys are made from it).
EDITABLE_TERMS = ("name", "description", "price_cents", "currency", "interval", "billing_unit",
                  "included_conversations", "included_messages", "message_categories", "overage_cents",
                  "rate_limit_per_minute", "phone_numbers_allowed", "features", "max_contacts",
                  "max_broadcast_recipients", "consent_managed_by_tenant", "inbox_seats", "trial_days", "sort_order")
# Subscriptions in these states hold no plan any more (not counted as subscribers).
ENDED_STATUSES = ("canceled", "incomplete_expired")

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
        "max_contacts": 1000,
        "sort_order": 0,
    },
    {
        "code": "starter",
        "name": "Starter",
        "description": "One live number, templates and media, webhooks.",
        "price_cents": 2900,
        "included_conversations": 1000,
        "overage_cents": Decimal("5"),
        "rate_limit_per_minute": 300,
        "phone_numbers_allowed": 1,
        "features": ["text", "template", "media", "webhooks", "inbox"],
        "inbox_seats": 2,
        "max_contacts": 10000,
        "sort_order": 10,
    },
    {
        "code": "pro",
        "name": "Pro",
        "description": "Interactive messages, broadcasts, several numbers, analytics export.",
        "price_cents": 9900,
        "included_conversations": 5000,
        "overage_cents": Decimal("4"),
        "rate_limit_per_minute": 1000,
        "phone_numbers_allowed": 5,
        "features": ["text", "template", "media", "interactive", "broadcast", "webhooks",
                     "multi_number", "analytics_export", "inbox", "automation", "order_notifications"],
        "inbox_seats": 10,
        "max_contacts": 100000,
        "max_broadcast_recipients": 100000,
        "sort_order": 20,
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "description": "High volume with the lowest overage price.",
        "price_cents": 49900,
        "included_conversations": 50000,
        "overage_cents": Decimal("3"),
        "rate_limit_per_minute": 6000,
        "phone_numbers_allowed": 25,
        "features": ["text", "template", "media", "interactive", "broadcast", "webhooks",
                     "multi_number", "analytics_export", "inbox", "automation", "order_notifications"],
        "inbox_seats": None,
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


def plan_on_offer(code: str) -> Plan | None:
    """The plan a tenant may choose: it exists and is not archived (archived plans keep
    their subscribers but take no new ones)."""
    plan = plan_by_code(code)
    return plan if plan is not None and plan.active else None


def all_plans() -> list[Plan]:
    """Every plan, archived ones included, in the catalogue's order."""
    return list(db.session.scalars(select(Plan).order_by(Plan.sort_order, Plan.id)))


def subscriber_counts() -> dict[int, int]:
    """Plan id -> subscriptions on it that have not ended."""
    rows = db.session.execute(select(Subscription.plan_id, func.count()).where(
        Subscription.status.not_in(ENDED_STATUSES)).group_by(Subscription.plan_id))
    return {plan_id: n for plan_id, n in rows}


def stripe_subscriber_count(plan: Plan) -> int:
    """Subscriptions on ``plan`` that Stripe bills and that have not ended."""
    return db.session.scalar(select(func.count()).select_from(Subscription).where(
        Subscription.plan_id == plan.id, Subscription.stripe_subscription_id.is_not(None),
        Subscription.status.not_in(ENDED_STATUSES)))


class PlanError(ValueError):
    """A change to a plan that is refused; ``field`` names the form field it concerns."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _money(cents: int | None, currency: str) -> str:
    return "hard cap" if cents is None else f"{cents / 100:.2f} {currency.upper()}"


def _recorded(value):
    """A term as the audit log's JSON holds it: an exact decimal as its plain string ("0.5")."""
    return plain_decimal(value) if isinstance(value, Decimal) else value


def create_plan(code: str, terms: dict, *, actor) -> Plan:
    """Add a plan (active, not yet on Stripe) and its audit entry. Commits.

    Raises PlanError("code") when the code is taken.
    """
    if plan_by_code(code) is not None:
        raise PlanError("code", "A plan with this code exists already.")
    plan = Plan(code=code, active=True, **{k: terms[k] for k in EDITABLE_TERMS})
    db.session.add(plan)
    try:
        db.session.flush()
    except IntegrityError:  # created at the same moment by someone else
        db.session.rollback()
        raise PlanError("code", "A plan with this code exists already.") from None
    audit.record(actor, "plan.created", f"Created plan {code} ({plan.name}, "
                 f"{_money(plan.price_cents, plan.currency)} per {plan.interval})", plan_code=code,
                 terms={k: _recorded(terms[k]) for k in EDITABLE_TERMS})
    db.session.commit()
    return plan


def update_plan(plan: Plan, terms: dict, *, actor) -> list[str]:
    """Change a plan's terms; returns the names of the terms that changed. Commits.

    A change to what Stripe holds marks the plan not synced. Current subscribers keep
    the price they pay until they change plan (Stripe renews archived prices).
    Raises PlanError when the free plan would stop being free, or when the unit billed
    would change under subscribers paying through Stripe.
    """
    if plan.code == FREE_CODE and terms.get("price_cents", 0) != 0:
        raise PlanError("price_cents", "The free plan stays free: tenants whose payments lapse fall back to it.")
    if terms.get("billing_unit", plan.billing_unit) != plan.billing_unit and stripe_subscriber_count(plan):
        # Their metered price counts the old unit's meter, and usage goes to the new unit's: unbilled.
        raise PlanError("billing_unit", f"Tenants pay for this plan through Stripe, their overage priced per "
                        f"{plan.billing_unit[:-1]}: it keeps its unit. Make a new plan billed the other way.")
    changed = {name: (getattr(plan, name), terms[name]) for name in EDITABLE_TERMS
               if name in terms and getattr(plan, name) != terms[name]}
    if not changed:
        return []
    for name, (_, new) in changed.items():
        setattr(plan, name, new)
    if any(name in STRIPE_TERMS for name in changed):
        plan.stripe_synced_at = None
    summary = ", ".join(f"{name} {_recorded(old)!r} -> {_recorded(new)!r}" for name, (old, new) in changed.items())
    audit.record(actor, "plan.updated", f"Updated plan {plan.code}: {summary}", plan_code=plan.code,
                 changes={name: [_recorded(old), _recorded(new)] for name, (old, new) in changed.items()})
    db.session.commit()
    return list(changed)


def archive_plan(plan: Plan, *, actor) -> bool:
    """Take the plan off sale: its subscribers keep it, nobody new may choose it. Commits.

    Returns False when it was archived already. Raises PlanError for the free plan,
    which tenants fall back to.
    """
    if plan.code == FREE_CODE:
        raise PlanError(None, "The free plan cannot be archived: tenants whose payments lapse fall back to it.")
    if not plan.active:
        return False
    plan.active = False
    plan.stripe_synced_at = None
    audit.record(actor, "plan.archived", f"Archived plan {plan.code} ({plan.name})", plan_code=plan.code)
    db.session.commit()
    return True


def unarchive_plan(plan: Plan, *, actor) -> bool:
    """Put an archived plan back on sale. Commits; False when it was on sale already."""
    if plan.active:
        return False
    plan.active = True
    plan.stripe_synced_at = None
    audit.record(actor, "plan.unarchived", f"Put plan {plan.code} ({plan.name}) back on sale", plan_code=plan.code)
    db.session.commit()
    return True


def overage_lookup_key(code: str) -> str:
    """The metered price's lookup key; the flat price's is the plan code itself."""
    return f"{code}_overage"


def plan_for_price(price_id: str | None = None, lookup_key: str | None = None, *,
                   metadata: dict | None = None) -> Plan | None:
    """The plan a Stripe price belongs to: by its id (current or metered), else by its lookup
    key, else by the ``plan_code`` of our metadata on it (a price replaced by a new amount
    has lost its lookup key, and its subscribers keep it until they change plan).

    Archived plans are found too: their subscribers keep them.
    """
    if price_id:
        plan = db.session.scalar(select(Plan).where(
            (Plan.stripe_price_id == price_id) | (Plan.stripe_metered_price_id == price_id)))
        if plan is not None:
            return plan
    if lookup_key:
        code = lookup_key[: -len("_overage")] if lookup_key.endswith("_overage") else lookup_key
        plan = plan_by_code(code)
        if plan is not None:
            return plan
    metadata = metadata or {}
    if metadata.get("app") == APP and metadata.get("plan_code"):
        return plan_by_code(str(metadata["plan_code"]))
    return None
