"""One of a tenant's Stripe invoices with its lines, each overage line named by the unit its meter counts.

An overage line is the line of a plan's metered price: Stripe sums the meter events of its unit whose
timestamps fall in the line's period, and each meter event is one usage record, dated by when the record
was made (saas.metering.reporting). So the records behind the line are the unit's overage records made in
``[period_start, period_end)``: the usage-records export with those filters lists them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import stripe as stripe_sdk
from sqlalchemy import select

from saas.billing.checkout import stripe_call
from saas.billing.meters import plan_unit
from saas.billing.models import Plan
from saas.errors import NotFound
from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import from_timestamp

INVOICE_ID = re.compile(r"in_[A-Za-z0-9_]{1,200}")
PAGE = 100


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    amount: int
    currency: str
    quantity: int | None
    period_start: datetime | None
    period_end: datetime | None
    # conversations or messages for a metered (overage) line; None for the plan's flat fee and the rest.
    unit: str | None


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str | None
    status: str | None
    created: datetime
    total: int
    currency: str
    hosted_invoice_url: str | None
    lines: list[InvoiceLine]


def _price_of(line: dict) -> str | None:
    """The price a line bills (``pricing.price_details.price`` since API 2025-03-31, ``price`` before)."""
    details = (line.get("pricing") or {}).get("price_details") or {}
    price = details.get("price") or line.get("price")
    return price.get("id") if isinstance(price, dict) else price


def metered_units() -> dict[str, str]:
    """Every plan's metered price id -> the unit it prices."""
    plans = db.session.scalars(select(Plan).where(Plan.stripe_metered_price_id.is_not(None)))
    return {plan.stripe_metered_price_id: plan_unit(plan) for plan in plans}


def _line(line: dict, units: dict[str, str], currency: str) -> InvoiceLine:
    period = line.get("period") or {}
    return InvoiceLine(
        description=str(line.get("description") or ""), amount=int(line.get("amount") or 0),
        currency=line.get("currency") or currency, quantity=line.get("quantity"),
        period_start=from_timestamp(period["start"]) if period.get("start") else None,
        period_end=from_timestamp(period["end"]) if period.get("end") else None,
        unit=units.get(_price_of(line) or ""))


def _all_lines(stripe, invoice: dict) -> list[dict]:
    """The invoice's lines: those it embeds, then the rest a page at a time when there are more."""
    listing = invoice.get("lines") or {}
    lines = list(listing.get("data") or [])
    more = listing.get("has_more")
    while more and lines:
        page = stripe.v1.invoices.line_items.list(
            invoice["id"], params={"limit": PAGE, "starting_after": lines[-1]["id"]}).to_dict()
        lines.extend(page.get("data") or [])
        more = page.get("has_more") and page.get("data")
    return lines


def invoice_of(stripe, tenant: Tenant, invoice_id: str) -> Invoice:
    """The tenant's invoice ``invoice_id`` with every line. Raises NotFound for an id that is not one of the
    tenant's invoices (another customer's too), BillingUnavailable when Stripe cannot answer."""
    if not tenant.stripe_customer_id or not INVOICE_ID.fullmatch(invoice_id or ""):
        raise NotFound("No such invoice.")
    with stripe_call("read an invoice"):
        try:
            invoice = stripe.v1.invoices.retrieve(invoice_id).to_dict()
        except stripe_sdk.InvalidRequestError as exc:  # a 404 is an answer, not an outage
            if exc.http_status == 404:
                raise NotFound("No such invoice.") from exc
            raise
        customer = invoice.get("customer")
        if (customer.get("id") if isinstance(customer, dict) else customer) != tenant.stripe_customer_id:
            raise NotFound("No such invoice.")
        raw_lines = _all_lines(stripe, invoice)
    currency, units = invoice.get("currency") or "usd", metered_units()
    return Invoice(id=invoice["id"], number=invoice.get("number"), status=invoice.get("status"),
                   created=from_timestamp(invoice["created"]),
                   total=int(invoice.get("total") if invoice.get("total") is not None else invoice.get("amount_due") or 0),
                   currency=currency, hosted_invoice_url=invoice.get("hosted_invoice_url"),
                   lines=[_line(line, units, currency) for line in raw_lines])
