"""Shops' order webhooks in: each tenant's own URL and signing secret per platform, the signature checked
as the shop signs it, and the shop's payload read as order events.

Shopify signs with ``X-Shopify-Hmac-Sha256`` and WooCommerce with ``X-WC-Webhook-Signature``: both the
base64 HMAC-SHA256 of the raw body with the secret. The secret is kept encrypted (saas.crypto, like
numbers' tokens); Shopify's is the one its admin shows ("Your webhooks will be signed with ..."), so a
tenant may set it, and WooCommerce's is the one the tenant types into the webhook's form (ours, generated).
A request without a signature is 401, with a wrong one 403, and neither writes anything.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from saas.crypto import decrypt_token, encrypt_token
from saas.errors import ApiError, InvalidRequest, NotFound
from saas.orders.fields import OrderData, amount, bounded, item, when_of
from saas.orders.models import PLATFORMS, ShopConnection
from saas.orders.states import CANCELLED, CREATED, DELIVERED, OUT_FOR_DELIVERY, PACKED, PAID, REFUNDED, SHIPPED
from saas.timeutil import utcnow

SIGNATURE_HEADERS = {"shopify": "X-Shopify-Hmac-Sha256", "woocommerce": "X-WC-Webhook-Signature"}
TOPIC_HEADERS = {"shopify": "X-Shopify-Topic", "woocommerce": "X-WC-Webhook-Topic"}
SECRET_MIN, SECRET_MAX = 16, 200
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
# WooCommerce pings a new webhook's URL with this form body, unsigned, and wants a 2xx.
WOO_PING = re.compile(rb"^webhook_id=[0-9]{1,19}$")


class SignatureMissing(ApiError):
    status = 401
    code = "unauthenticated"
    message = "The request carries no shop signature."


class SignatureInvalid(ApiError):
    status = 403
    code = "invalid_signature"
    message = "The shop signature does not match the body: check the webhook's secret."


@dataclass(frozen=True)
class ShopEvent:
    """One order event read from a shop's payload."""

    reference: str
    event: str
    when: datetime | None
    data: OrderData


# -- connections -----------------------------------------------------------------------------------------

def connections_for(session, tenant) -> list[ShopConnection]:
    return list(session.scalars(select(ShopConnection).where(ShopConnection.tenant_id == tenant.id)
                                .order_by(ShopConnection.platform)))


def connect(session, tenant, platform: str, secret: str | None = None) -> tuple[ShopConnection, str]:
    """The tenant's connection of ``platform`` with a new secret (``secret``, e.g. Shopify's, or one
    generated); made with its URL when there is none, its URL kept otherwise. Commits. Returns the
    connection and the secret in clear."""
    if platform not in PLATFORMS:
        raise NotFound("No such shop platform.")
    if secret is not None and (not isinstance(secret, str) or not SECRET_MIN <= len(secret) <= SECRET_MAX
                               or not secret.isascii() or not secret.isprintable()):
        raise InvalidRequest("Some fields are missing or invalid.", details={"secret": [
            f"A secret is {SECRET_MIN} to {SECRET_MAX} printable ASCII characters."]})
    secret = secret or secrets.token_urlsafe(32)
    now = utcnow()
    row = session.scalar(select(ShopConnection).where(ShopConnection.tenant_id == tenant.id,
                                                      ShopConnection.platform == platform))
    if row is None:
        row = ShopConnection(tenant_id=tenant.id, platform=platform, token=secrets.token_urlsafe(24), created_at=now)
        session.add(row)
    row.secret_encrypted, row.updated_at = encrypt_token(secret), now
    session.commit()
    return row, secret


def secret_of(connection: ShopConnection) -> str:
    return decrypt_token(connection.secret_encrypted)


def by_token(session, token: str) -> ShopConnection:
    """The connection a webhook URL names; NotFound for none."""
    row = session.scalar(select(ShopConnection).where(ShopConnection.token == token)) if TOKEN.match(token) else None
    if row is None:
        raise NotFound("No such shop webhook URL.")
    return row


def verify(connection: ShopConnection, body: bytes, headers) -> None:
    """The body's signature as the connection's platform signs it; SignatureMissing or SignatureInvalid."""
    given = headers.get(SIGNATURE_HEADERS[connection.platform])
    if not given:
        raise SignatureMissing()
    expected = base64.b64encode(hmac.new(secret_of(connection).encode(), body, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected.encode(), given.strip().encode("ascii", "replace")):
        raise SignatureInvalid()


def woo_ping(connection: ShopConnection, body: bytes) -> bool:
    return connection.platform == "woocommerce" and bool(WOO_PING.match(body))


# -- payloads ----------------------------------------------------------------------------------------------

def _name(person) -> str | None:
    if not isinstance(person, dict):
        return None
    return bounded(" ".join(str(person.get(k) or "") for k in ("first_name", "last_name")), 200)


def _phone(*candidates) -> str | None:
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value[:32]
    return None


def _items(lines, name_key: str) -> list | None:
    if not isinstance(lines, list):
        return None
    found = [item(line.get(name_key) or line.get("name"), line.get("quantity"), line.get("price"), line.get("sku"))
             for line in lines[:100] if isinstance(line, dict)]
    return [i for i in found if i is not None]


def _reference(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value).strip()
    return text if re.match(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", text) else None


def _shopify_order(payload: dict) -> OrderData:
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    shipping = payload.get("shipping_address") if isinstance(payload.get("shipping_address"), dict) else {}
    billing = payload.get("billing_address") if isinstance(payload.get("billing_address"), dict) else {}
    return OrderData(phone=_phone(payload.get("phone"), customer.get("phone"), shipping.get("phone"),
                                  billing.get("phone")),
                     customer_name=_name(customer) or _name(shipping), name=bounded(payload.get("name"), 100),
                     items=_items(payload.get("line_items"), "title"), total=amount(payload.get("total_price")),
                     currency=_currency(payload.get("currency")))


def _currency(value) -> str | None:
    return value if isinstance(value, str) and re.match(r"^[A-Z]{3}$", value) else None


# Shopify's fulfillment shipment_status -> our state (None: the fulfillment itself, i.e. shipped).
SHIPMENT = {None: SHIPPED, "confirmed": SHIPPED, "in_transit": SHIPPED, "label_printed": PACKED,
            "label_purchased": PACKED, "ready_for_pickup": OUT_FOR_DELIVERY, "out_for_delivery": OUT_FOR_DELIVERY,
            "delivered": DELIVERED, "picked_up": DELIVERED}
SHOPIFY_ORDER_TOPICS = {"orders/create": (CREATED, "created_at"), "orders/paid": (PAID, "updated_at"),
                        "orders/cancelled": (CANCELLED, "cancelled_at")}


def shopify_events(topic: str | None, payload: dict) -> list[ShopEvent]:
    """The order events of a Shopify webhook (none for a topic or shipment status that moves no order)."""
    if topic in SHOPIFY_ORDER_TOPICS:
        event, stamp = SHOPIFY_ORDER_TOPICS[topic]
        reference = _reference(payload.get("id"))
        return [ShopEvent(reference, event, when_of(payload.get(stamp)) or when_of(payload.get("updated_at")),
                          _shopify_order(payload))] if reference else []
    if topic not in ("fulfillments/create", "fulfillments/update"):
        return []
    reference = _reference(payload.get("order_id"))
    status = payload.get("shipment_status")
    if reference is None or status not in SHIPMENT or payload.get("status") in ("cancelled", "error", "failure"):
        return []
    destination = payload.get("destination") if isinstance(payload.get("destination"), dict) else {}
    urls = payload.get("tracking_urls") if isinstance(payload.get("tracking_urls"), list) else []
    url = payload.get("tracking_url") or (urls[0] if urls else None)
    data = OrderData(phone=_phone(destination.get("phone")), customer_name=_name(destination),
                     tracking_number=bounded(payload.get("tracking_number"), 100),
                     tracking_url=url[:2048] if isinstance(url, str) and re.match(r"^https?://\S+$", url) else None,
                     carrier=bounded(payload.get("tracking_company"), 100))
    return [ShopEvent(reference, SHIPMENT[status], when_of(payload.get("updated_at")), data)]


# WooCommerce's order statuses -> our state. Its core has no delivery: "completed" is fulfilled, sent out.
WOO_STATUS = {"pending": CREATED, "on-hold": CREATED, "processing": PAID, "completed": SHIPPED,
              "cancelled": CANCELLED, "refunded": REFUNDED}
WOO_STAMP = {PAID: "date_paid_gmt", SHIPPED: "date_completed_gmt"}


def woocommerce_events(topic: str | None, payload: dict) -> list[ShopEvent]:
    """The order event of a WooCommerce order webhook (none for another resource or a status that moves
    no order)."""
    if topic not in (None, "order.created", "order.updated", "order.restored"):
        return []
    reference = _reference(payload.get("id"))
    event = WOO_STATUS.get(payload.get("status"))
    if reference is None or event is None:
        return []
    billing = payload.get("billing") if isinstance(payload.get("billing"), dict) else {}
    shipping = payload.get("shipping") if isinstance(payload.get("shipping"), dict) else {}
    number = bounded(payload.get("number"), 99)
    data = OrderData(phone=_phone(billing.get("phone"), shipping.get("phone")),
                     customer_name=_name(billing) or _name(shipping), name=f"#{number}" if number else None,
                     items=_items(payload.get("line_items"), "name"), total=amount(payload.get("total")),
                     currency=_currency(payload.get("currency")))
    stamp = payload.get(WOO_STAMP.get(event, "date_modified_gmt")) or payload.get("date_modified_gmt")
    when = when_of(stamp + "Z" if isinstance(stamp, str) and "+" not in stamp and not stamp.endswith("Z") else stamp)
    return [ShopEvent(reference, event, when, data)]


def events_of(connection: ShopConnection, headers, body: bytes) -> list[ShopEvent]:
    """The order events of a verified webhook body; InvalidRequest when it is not a JSON object."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The body must be a JSON object.")
    topic = headers.get(TOPIC_HEADERS[connection.platform])
    read = shopify_events if connection.platform == "shopify" else woocommerce_events
    return read(topic, payload)
