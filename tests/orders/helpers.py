"""Order test data: a Pro tenant's API client (its sandbox number), its mappings and shop connections,
signed shop webhooks, and what the send service sent."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from sqlalchemy import func, select

from saas.extensions import db
from saas.messaging.models import Message
from saas.orders.models import Order, OrderEvent, OrderNotification
from tests.factories import Sender, sender

CUSTOMER = "+90 532 000 00 01"
CUSTOMER_WA_ID = "905320000001"


class Store:
    """A tenant's API client with order helpers."""

    def __init__(self, client, plan: str = "pro", *, tenant_id: int | None = None):
        self.client = client
        self.app = client.application
        if tenant_id is None:
            self.api = sender(client, plan)
        else:
            from saas.tenants.models import Tenant

            with self.app.app_context():
                self.api = Sender(client, db.session.get(Tenant, tenant_id))
                db.session.remove()
        self.tenant_id = self.api.tenant_id

    def call(self, method: str, path: str, body=None, **kwargs):
        return self.client.open(path, method=method, json=body, headers=self.api.headers, **kwargs)

    def map(self, event: str, template: str = "order_update", variables: dict | None = None, **extra):
        body = {"template": {"name": template, "language": "en_US"}, **extra}
        if variables is not None:
            body["variables"] = variables
        return self.call("PUT", f"/api/v1/order-notifications/{event}", body)

    def map_all(self, events=("created", "paid", "packed", "shipped", "out_for_delivery", "delivered",
                              "cancelled", "refunded")):
        for event in events:
            assert self.map(event).status_code == 200, event

    def event(self, reference: str, event: str, **data):
        return self.call("POST", f"/api/v1/orders/{reference}/events", {"event": event, **data})

    def connect(self, platform: str, secret: str | None = None) -> dict:
        response = self.call("PUT", f"/api/v1/shop-connections/{platform}", {"secret": secret} if secret else None)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def notifications(self) -> list[tuple]:
        """(order reference, event, status) of every notification of the tenant."""
        with self.app.app_context():
            rows = db.session.execute(select(Order.reference, OrderNotification.event, OrderNotification.status)
                                      .join(Order, Order.id == OrderNotification.order_id)
                                      .where(OrderNotification.tenant_id == self.tenant_id)
                                      .order_by(OrderNotification.id)).all()
            db.session.remove()
        return [tuple(r) for r in rows]

    def sent(self) -> list[str]:
        """The template name of every message the tenant sent, in order."""
        with self.app.app_context():
            rows = db.session.scalars(select(Message.body_summary).where(
                Message.tenant_id == self.tenant_id, Message.direction == "out").order_by(Message.id)).all()
            db.session.remove()
        return list(rows)

    def counts(self) -> dict:
        with self.app.app_context():
            found = {model.__tablename__: db.session.scalar(select(func.count()).select_from(model).where(
                model.tenant_id == self.tenant_id)) for model in (Order, OrderEvent, OrderNotification, Message)}
            db.session.remove()
        return found


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post_shopify(client, url: str, secret: str | None, topic: str, payload: dict, *, signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": "example.myshopify.com",
               "Content-Type": "application/json"}
    if signature is not None or secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature if signature is not None else sign(secret, body)
    return client.post(url, data=body, headers=headers)


def post_woocommerce(client, url: str, secret: str | None, payload: dict, *, topic: str = "order.updated"):
    body = json.dumps(payload).encode()
    headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": "order", "Content-Type": "application/json"}
    if secret is not None:
        headers["X-WC-Webhook-Signature"] = sign(secret, body)
    return client.post(url, data=body, headers=headers)
