"""Our plans on Stripe: a Product, a flat recurring Price and, for plans with overage, a metered
Price on the Billing Meter of the unit the plan prices (saas.billing.meters), each made to match the
plan's terms.

The sync compares before it writes, so running it again changes nothing. It finds what
exists before it creates (by the ids stored on the plan, by lookup key, by the meter's
event name, by our metadata), and every create carries an idempotency key derived from
what it creates, so a sync after a crash or a lost database adopts what is there instead
of making it twice. Ids are stored (and committed) the moment an object is created.
"""
from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

import stripe
from flask import current_app
from sqlalchemy import select

from saas.audit import services as audit
from saas.billing import meters
from saas.billing.catalog import APP, overage_lookup_key
from saas.billing.models import Plan
from saas.billing.money import plain_decimal
from saas.billing.stripe_calls import create, retrieve
from saas.billing.stripe_fields import UnstorableStripeObject, is_stripe_id, storable_text
from saas.errors import BillingUnavailable
from saas.extensions import db
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

ERROR_LENGTH = 500


class CatalogSyncFailed(BillingUnavailable):
    """Stripe failed during a sync. What was created before is stored on the plan, so a
    rerun continues from there. ``lines`` says what was done before the failure."""

    def __init__(self, code: str, reason: str, lines: list[str]):
        super().__init__(f"{code}: Stripe failed ({reason}). What was created is recorded; "
                         "run the sync again to finish.")
        self.plan_code = code
        self.reason = reason
        self.lines = lines


def sync_plans(client: stripe.StripeClient, plans=None, *, actor=None) -> list[str]:
    """Sync ``plans`` (default: every plan) to Stripe, in the catalogue's order; one line per plan.

    Stops at the first failure with CatalogSyncFailed, whose ``lines`` include those of
    the plans synced before it. Commits as it goes; ``actor`` (a User or "cli") gets a
    ``plan.synced`` audit entry for each plan that changed.
    """
    if plans is None:
        plans = db.session.scalars(select(Plan).order_by(Plan.sort_order, Plan.id))
    sync = CatalogSync(client, meters.event_names(current_app.config))
    lines: list[str] = []
    for plan in list(plans):
        try:
            lines.append(sync.plan(plan, actor=actor))
        except CatalogSyncFailed as exc:
            exc.lines = lines + exc.lines
            raise
    return lines


def sync_plan(client: stripe.StripeClient, plan: Plan, *, actor=None, audit_unchanged: bool = False) -> list[str]:
    """Sync one plan to Stripe; a one-line list saying what changed (see ``sync_plans``).

    ``audit_unchanged``: record the ``plan.synced`` entry even when nothing changed (an
    admin asked for the sync). Raises CatalogSyncFailed when Stripe fails; the plan is
    then marked not synced, with the reason.
    """
    sync = CatalogSync(client, meters.event_names(current_app.config))
    return [sync.plan(plan, actor=actor, audit_unchanged=audit_unchanged)]


class Changes:
    """What a sync did to one plan, said as "created product X, price Y; archived price Z"."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, verb: str, what: str) -> None:
        self.items.append((verb, what))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __str__(self) -> str:
        groups: list[tuple[str, list[str]]] = []
        for verb, what in self.items:
            if groups and groups[-1][0] == verb:
                groups[-1][1].append(what)
            else:
                groups.append((verb, [what]))
        return "; ".join(f"{verb} {', '.join(whats)}" for verb, whats in groups)


def _metadata(plan: Plan, kind: str | None = None) -> dict:
    data = {"app": APP, "plan_code": plan.code}
    if kind:
        data["kind"] = kind
    return data


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _stored_id(obj: dict) -> str:
    """The id of a Stripe object we keep on the plan; UnstorableStripeObject if it would not fit its column."""
    if not is_stripe_id(obj.get("id")):
        raise UnstorableStripeObject(f"a {obj.get('object') or 'Stripe object'} id that is not a Stripe id")
    return obj["id"]


def _reason(exc: stripe.StripeError | UnstorableStripeObject) -> str:
    if isinstance(exc, UnstorableStripeObject):
        return f"it answered {exc}"
    if isinstance(exc, stripe.APIConnectionError):
        return "could not reach Stripe"
    status = f"HTTP {exc.http_status}: " if exc.http_status else ""
    return f"{status}{exc.user_message or type(exc).__name__}"


class CatalogSync:
    """One sync run. Holds the meters once found, so plans sharing one look it up once.

    ``event_names``: each priced unit's meter event name (saas.billing.meters.event_names).
    """

    def __init__(self, client: stripe.StripeClient, event_names: dict[str, str]):
        self.client = client
        self._meters = meters.MeterSync(client, event_names)

    # -- one plan ------------------------------------------------------------------------
    def plan(self, plan: Plan, *, actor=None, audit_unchanged: bool = False) -> str:
        code = plan.code
        if plan.is_free:
            return f"{code}: free, not sold through Stripe"
        changes = Changes()
        try:
            if plan.active:
                self._sync_active(plan, changes)
            else:
                self._sync_archived(plan, changes)
        except (stripe.StripeError, UnstorableStripeObject) as exc:
            db.session.rollback()
            reason = _reason(exc)
            log.warning("plan %s: the sync to Stripe failed: %s", code, reason)
            plan.stripe_synced_at = None
            plan.stripe_sync_error = storable_text(f"Stripe failed: {reason}", ERROR_LENGTH)
            db.session.commit()
            done = [f"{code}: {changes} (then Stripe failed)"] if changes else []
            raise CatalogSyncFailed(code, reason, done) from exc
        plan.stripe_synced_at = utcnow()
        plan.stripe_sync_error = None
        if actor is not None and (changes or audit_unchanged):
            audit.record(actor, "plan.synced", f"Synced plan {code} to Stripe: {changes or 'unchanged'}",
                         plan_code=code)
        db.session.commit()
        if not plan.active:
            return f"{code}: archived; " + (str(changes) if changes else
                                             "nothing created, its prices stay for current subscribers")
        return f"{code}: {changes}" if changes else f"{code}: unchanged"

    def _sync_active(self, plan: Plan, changes: Changes) -> None:
        holders: dict[str, dict | None] = {}
        product = self._product(plan, changes, holders)
        flat = self._price(plan, "flat", product["id"], None, changes, holders)
        keep = {flat["id"]}
        if plan.overage_cents is not None:
            meter = self._meter_for(plan, changes)
            overage = self._price(plan, "overage", product["id"], meter["id"], changes, holders)
            keep.add(overage["id"])
        elif plan.stripe_metered_price_id:
            # Now a hard cap: new subscriptions get no metered price (current ones keep theirs).
            plan.stripe_metered_price_id = None
            db.session.commit()
        self._archive_stale(plan, product["id"], keep, changes)

    def _sync_archived(self, plan: Plan, changes: Changes) -> None:
        # Archived: nothing is created and its prices stay active, so current subscriptions
        # renew; only the product's name and description follow the plan (invoices show them).
        product = retrieve(self.client.v1.products, plan.stripe_product_id)
        if product is not None:
            self._update_product(plan, product, changes, reactivate=False)

    # -- the product -----------------------------------------------------------------------
    def _product(self, plan: Plan, changes: Changes, holders: dict) -> dict:
        product = retrieve(self.client.v1.products, plan.stripe_product_id)
        if product is None:
            product = self._find_product(plan, holders)
            if product is not None:
                changes.add("found", f"product {product['id']}")
        if product is None:
            params = {"name": plan.name, "metadata": _metadata(plan)}
            if plan.description:
                params["description"] = plan.description
            product = create(self.client.v1.products, params, f"plan-{plan.code}-product")
            changes.add("created", f"product {product['id']}")
        if plan.stripe_product_id != product["id"]:
            plan.stripe_product_id = _stored_id(product)
            db.session.commit()
        return self._update_product(plan, product, changes, reactivate=True)

    def _find_product(self, plan: Plan, holders: dict) -> dict | None:
        """After lost ids: the product of the plan's prices, else the one our metadata names."""
        for key in (plan.code, overage_lookup_key(plan.code)):
            price = self._holder(key, holders)
            if price is not None and price.get("product"):
                found = retrieve(self.client.v1.products, price["product"])
                if found is not None:
                    return found
        for product in self.client.v1.products.list(params={"limit": 100}).auto_paging_iter():
            metadata = product.to_dict().get("metadata") or {}
            if metadata.get("app") == APP and metadata.get("plan_code") == plan.code:
                return product.to_dict()
        return None

    def _update_product(self, plan: Plan, product: dict, changes: Changes, *, reactivate: bool) -> dict:
        update: dict = {}
        if product.get("name") != plan.name:
            update["name"] = plan.name
        if (product.get("description") or "") != (plan.description or ""):
            update["description"] = plan.description or ""  # "" unsets it
        if reactivate and not product.get("active", True):
            update["active"] = True
        metadata = product.get("metadata") or {}
        if any(metadata.get(k) != v for k, v in _metadata(plan).items()):
            update["metadata"] = _metadata(plan)
        if not update:
            return product
        updated = self.client.v1.products.update(product["id"], params=update).to_dict()
        changes.add("updated", f"product {product['id']} ({', '.join(sorted(update))})")
        return updated

    # -- prices ----------------------------------------------------------------------------
    def _price(self, plan: Plan, kind: str, product_id: str, meter_id: str | None, changes: Changes,
               holders: dict) -> dict:
        """The plan's active price of ``kind`` ("flat" or "overage") holding its lookup key:
        the stored one, else the lookup key's holder, else a new one that takes the key over."""
        key = plan.code if kind == "flat" else overage_lookup_key(plan.code)
        column = "stripe_price_id" if kind == "flat" else "stripe_metered_price_id"
        stored_id = getattr(plan, column)
        stored = retrieve(self.client.v1.prices, stored_id)
        if stored is not None and self._matches(stored, plan, kind, product_id, meter_id) \
                and stored.get("lookup_key") == key:
            return stored
        holder = self._holder(key, holders)
        old = {p["id"]: p for p in (stored, holder) if p is not None}
        if holder is not None and self._matches(holder, plan, kind, product_id, meter_id):
            price = holder
            if price["id"] != stored_id:
                changes.add("found", f"price {price['id']} (lookup key {key})")
        elif stored is not None and self._matches(stored, plan, kind, product_id, meter_id):
            price = self.client.v1.prices.update(stored["id"], params={
                "lookup_key": key, "transfer_lookup_key": True}).to_dict()
            changes.add("moved", f"lookup key {key} to price {price['id']}")
        else:
            price = self._create_price(plan, kind, key, product_id, meter_id, replaces=holder or stored)
            what = f"price {price['id']} (lookup key {key}" + (f", meter {meter_id})" if meter_id else ")")
            changes.add("created", what)
        holders[key] = price
        if stored_id != price["id"]:
            setattr(plan, column, _stored_id(price))
            db.session.commit()
        for previous in old.values():
            if previous["id"] != price["id"] and previous.get("active"):
                self._archive(previous, changes)
        return price

    def _create_price(self, plan: Plan, kind: str, key: str, product_id: str, meter_id: str | None,
                      *, replaces: dict | None) -> dict:
        recurring = {"interval": plan.interval, "interval_count": 1}
        params = {"product": product_id, "currency": plan.currency, "lookup_key": key,
                  "transfer_lookup_key": True, "metadata": _metadata(plan, kind), "recurring": recurring}
        if kind == "flat":
            params["unit_amount"] = plan.price_cents
            recurring["usage_type"] = "licensed"
            amount = plan.price_cents
        else:
            # Fractions of a cent allowed: Stripe takes up to 12 decimal places here.
            params["unit_amount_decimal"] = plain_decimal(plan.overage_cents)
            params["billing_scheme"] = "per_unit"
            recurring.update(usage_type="metered", meter=meter_id)
            amount = f"{plain_decimal(plan.overage_cents)}-{meter_id}"
        # The key names what is created and the price it replaces: going back to an
        # earlier amount within Stripe's 24 hours makes a new price, not a replay of the old.
        idempotency_key = (f"plan-{plan.code}-{kind}-price-{amount}-{plan.currency}-{plan.interval}"
                           f"-{product_id}-after-{replaces['id'] if replaces else 'none'}")
        return create(self.client.v1.prices, params, idempotency_key)

    def _matches(self, price: dict, plan: Plan, kind: str, product_id: str, meter_id: str | None) -> bool:
        recurring = price.get("recurring") or {}
        if not (price.get("active") and price.get("product") == product_id and price.get("currency") == plan.currency
                and recurring.get("interval") == plan.interval and recurring.get("interval_count", 1) == 1
                and price.get("billing_scheme", "per_unit") == "per_unit"):
            return False
        if kind == "flat":
            return (recurring.get("usage_type", "licensed") == "licensed"
                    and price.get("unit_amount") == plan.price_cents)
        return (recurring.get("usage_type") == "metered" and recurring.get("meter") == meter_id
                and _decimal(price.get("unit_amount_decimal")) == Decimal(plan.overage_cents))

    def _holder(self, key: str, holders: dict) -> dict | None:
        """The price holding a lookup key (active or not: an archived price keeps its key)."""
        if key not in holders:
            found = self.client.v1.prices.list(params={"lookup_keys": [key], "limit": 1}).data
            holders[key] = found[0].to_dict() if found else None
        return holders[key]

    def _archive_stale(self, plan: Plan, product_id: str, keep: set[str], changes: Changes) -> None:
        """Archive the plan's other active prices (left by a sync interrupted after a create)."""
        listing = self.client.v1.prices.list(params={"product": product_id, "active": True, "limit": 100})
        for price in listing.auto_paging_iter():
            price = price.to_dict()
            metadata = price.get("metadata") or {}
            if price["id"] not in keep and metadata.get("app") == APP and metadata.get("plan_code") == plan.code:
                self._archive(price, changes)

    def _archive(self, price: dict, changes: Changes) -> None:
        # Archived prices still renew the subscriptions on them; they are just not sold anew.
        self.client.v1.prices.update(price["id"], params={"active": False})
        price["active"] = False
        changes.add("archived", f"price {price['id']}")

    # -- the meter -------------------------------------------------------------------------
    def _meter_for(self, plan: Plan, changes: Changes) -> dict:
        """The meter of the unit the plan prices, shared by every plan with overage of that unit."""
        meter = self._meters.of_unit(meters.plan_unit(plan), plan.stripe_meter_id, changes)
        if plan.stripe_meter_id != meter["id"]:
            plan.stripe_meter_id = _stored_id(meter)
            db.session.commit()
        return meter
