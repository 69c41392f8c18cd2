"""What an order event carries, checked and bounded: the API's body (refused field by field when wrong)
and what the shop webhooks read from the shops' own payloads (kept, but cut to the columns' sizes)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError, fields, validate, validates_schema

from saas.contacts import directory
from saas.messaging.outbound.payloads import Lenient, http_url
from saas.orders.models import REFERENCE_MAX
from saas.orders.states import EVENTS
from saas.text import inert, problem

MAX_ITEMS = 100
AMOUNT = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


@dataclass
class OrderData:
    """An event's order data; None: not given (what the order has stays)."""

    phone: str | None = None
    customer_name: str | None = None
    name: str | None = None
    items: list | None = None
    total: str | None = None
    currency: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    carrier: str | None = None
    extra: dict = field(default_factory=dict)

    def given(self) -> dict:
        """The fields given, as the order's columns take them (the number as a WhatsApp id)."""
        values = {name: getattr(self, name) for name in (
            "customer_name", "name", "items", "total", "currency", "tracking_number", "tracking_url", "carrier")}
        return {k: v for k, v in values.items() if v is not None}


def reference_problem(reference: str) -> str | None:
    if not isinstance(reference, str) or not REFERENCE.match(reference):
        return (f"A reference is 1 to {REFERENCE_MAX} letters, digits and . _ : -, starting with a letter or "
                "digit.")
    return None


def wa_id_of(phone) -> str | None:
    """A customer's number as a WhatsApp id (digits with the country code), or None when it cannot be one."""
    parsed = directory.parse_wa_id(phone) if isinstance(phone, str) else None
    return parsed.digits if parsed is not None and parsed.possible else None


def bounded(value, limit: int) -> str | None:
    """A shop's text cut to ``limit`` characters, without control characters; None when empty."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = " ".join(inert(str(value)).split())[:limit]
    return text or None


def amount(value) -> str | None:
    """A money amount as a decimal string ("403.00"), or None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) >= Decimal(10) ** 15:
        return None
    if number.as_tuple().exponent < -4:
        number = number.quantize(Decimal("0.0001"))
    text = format(number, "f")
    return text if AMOUNT.match(text) else None


def item(name, quantity, price=None, sku=None) -> dict | None:
    """One line of an order as stored, bounded; None without a name."""
    name = bounded(name, 200)
    if name is None:
        return None
    try:
        quantity = max(1, min(int(quantity), 1_000_000))
    except (TypeError, ValueError):
        quantity = 1
    return {"name": name, "quantity": quantity, "price": amount(price), "sku": bounded(sku, 100)}


def _clean(value: str) -> None:
    found = problem(value)
    if found:
        raise ValidationError(found)


def _amount(value: str) -> None:
    if not AMOUNT.match(value or ""):
        raise ValidationError("An amount is a decimal number such as 19.99.")


class Item(Lenient):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _clean])
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    price = fields.String(validate=_amount)
    sku = fields.String(validate=[validate.Length(max=100), _clean])


class EventBody(Lenient):
    """POST /api/v1/orders/{reference}/events."""

    event = fields.String(required=True, validate=validate.OneOf(EVENTS))
    occurred_at = fields.AwareDateTime(default_timezone=timezone.utc)
    phone = fields.String(validate=validate.Length(min=7, max=32))
    customer_name = fields.String(validate=[validate.Length(max=200), _clean])
    name = fields.String(validate=[validate.Length(min=1, max=100), _clean])
    items = fields.List(fields.Nested(Item), validate=validate.Length(max=MAX_ITEMS))
    total = fields.String(validate=_amount)
    currency = fields.String(validate=validate.Regexp(CURRENCY, error="A currency is an ISO 4217 code such as USD."))
    tracking_number = fields.String(validate=[validate.Length(min=1, max=100), _clean])
    tracking_url = fields.String(validate=[validate.Length(max=2048), http_url])
    carrier = fields.String(validate=[validate.Length(min=1, max=100), _clean])

    @validates_schema
    def a_number_that_can_be_a_whatsapp_id(self, data, **kwargs):
        if "phone" in data and wa_id_of(data["phone"]) is None:
            raise ValidationError("Give the customer's WhatsApp number with its country code.", "phone")


def from_body(data: dict) -> tuple[str, datetime | None, OrderData]:
    """A loaded EventBody as (event, when it happened as naive UTC or None, its order data)."""
    when = data.get("occurred_at")
    if when is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    items = None
    if "items" in data:
        items = [item(i["name"], i["quantity"], i.get("price"), i.get("sku")) for i in data["items"]]
    return data["event"], when, OrderData(
        phone=data.get("phone"), customer_name=data.get("customer_name"), name=data.get("name"), items=items,
        total=amount(data.get("total")), currency=data.get("currency"), tracking_number=data.get("tracking_number"),
        tracking_url=data.get("tracking_url"), carrier=data.get("carrier"))


def when_of(value) -> datetime | None:
    """A shop's ISO 8601 time ("2021-12-31T19:00:00-05:00", or without a zone: UTC) as naive UTC."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
