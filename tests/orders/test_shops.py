"""Shop webhooks: each tenant's URL and secret, signatures checked as Shopify and WooCommerce sign, their
documented payloads read as the right order events, and a refused request writes nothing."""
from __future__ import annotations

from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.orders.models import ShopConnection
from tests.orders import payloads
from tests.orders.helpers import Store, post_shopify, post_woocommerce, sign

SHOPIFY_SECRET = "shpss_0123456789abcdef0123456789abcdef"


def path_of(connection: dict) -> str:
    return urlparse(connection["url"]).path


@pytest.fixture
def shop(client):
    store = Store(client)
    store.map_all()
    store.shopify = store.connect("shopify", SHOPIFY_SECRET)
    return store


def test_shopify_topics_map_to_the_right_events(client, shop):
    url = path_of(shop.shopify)
    created = post_shopify(client, url, SHOPIFY_SECRET, "orders/create", payloads.shopify_order())
    assert created.status_code == 200, created.get_json()
    assert created.get_json()["events"] == [{"reference": str(payloads.ORDER_ID), "event": "created",
                                             "outcome": "applied", "applied": True}]
    order = shop.call("GET", f"/api/v1/orders/{payloads.ORDER_ID}").get_json()
    assert (order["name"], order["wa_id"], order["customer_name"], order["total"], order["currency"]) == (
        "#9999", "905320000002", "John Smith", "398.00", "USD")
    assert order["items"][0] == {"name": "IPod Nano - 8GB", "quantity": 1, "price": "199.00", "sku": "IPOD2008PINK"}
    assert order["state_at"] == "2022-01-01T00:00:00Z"  # the shop's clock, in UTC
    steps = [("orders/paid", payloads.shopify_order(financial_status="paid"), "paid"),
             ("fulfillments/update", payloads.shopify_fulfillment(shipment_status="label_printed"), "packed"),
             ("fulfillments/create", payloads.shopify_fulfillment(), "shipped"),
             ("fulfillments/update", payloads.shopify_fulfillment(shipment_status="out_for_delivery"),
              "out_for_delivery"),
             ("fulfillments/update", payloads.shopify_fulfillment(shipment_status="delivered"), "delivered")]
    for topic, payload, event in steps:
        answer = post_shopify(client, url, SHOPIFY_SECRET, topic, payload).get_json()
        assert [(e["event"], e["outcome"]) for e in answer["events"]] == [(event, "applied")], topic
    order = shop.call("GET", f"/api/v1/orders/{payloads.ORDER_ID}").get_json()
    assert (order["state"], order["tracking_number"], order["carrier"]) == ("delivered", "1Z2345", "UPS")
    assert order["tracking_url"].startswith("https://www.ups.com/WebTracking")
    assert [n[1:] for n in shop.notifications()] == [(e, "sent") for e in (
        "created", "paid", "packed", "shipped", "out_for_delivery", "delivered")]


def test_shopify_cancelled_and_a_failed_delivery_attempt(client, shop):
    url = path_of(shop.shopify)
    post_shopify(client, url, SHOPIFY_SECRET, "orders/create", payloads.shopify_order())
    attempt = post_shopify(client, url, SHOPIFY_SECRET, "fulfillments/update",
                           payloads.shopify_fulfillment(shipment_status="attempted_delivery"))
    assert attempt.status_code == 200 and attempt.get_json()["events"] == []
    cancelled = post_shopify(client, url, SHOPIFY_SECRET, "orders/cancelled", payloads.shopify_order(
        cancelled_at="2022-01-02T10:00:00-05:00", cancel_reason="customer"))
    assert cancelled.get_json()["events"][0]["event"] == "cancelled"
    assert [n[1] for n in shop.notifications()] == ["created", "cancelled"]


def test_a_retried_shopify_webhook_sends_nothing_twice(client, shop):
    url = path_of(shop.shopify)
    for _ in range(3):
        assert post_shopify(client, url, SHOPIFY_SECRET, "orders/create", payloads.shopify_order()).status_code == 200
    again = post_shopify(client, url, SHOPIFY_SECRET, "orders/create", payloads.shopify_order()).get_json()
    assert again["events"][0]["outcome"] == "duplicate"
    assert len(shop.sent()) == 1


@pytest.mark.parametrize("signature, status", [(None, 401), ("", 401), ("bm90IHRoZSBzaWduYXR1cmU=", 403),
                                               ("\u00e9", 403)])
def test_a_missing_or_wrong_shopify_signature_is_refused_and_writes_nothing(client, shop, signature, status):
    body = payloads.shopify_order()
    before = shop.counts()
    headers_signature = signature if signature is not None else None
    if signature is None:
        response = post_shopify(client, path_of(shop.shopify), None, "orders/create", body)
    else:
        response = post_shopify(client, path_of(shop.shopify), None, "orders/create", body,
                                signature=headers_signature)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] in ("unauthenticated", "invalid_signature")
    assert shop.counts() == before


def test_another_tenants_secret_does_not_sign_for_this_one(client, shop):
    other = Store(client)
    other_secret = other.connect("shopify")["secret"]
    before = shop.counts()
    response = post_shopify(client, path_of(shop.shopify), other_secret, "orders/create", payloads.shopify_order())
    assert response.status_code == 403
    assert shop.counts() == before and other.counts()["orders"] == 0


def test_an_unknown_url_is_404(client, shop):
    response = post_shopify(client, "/webhooks/shops/" + "x" * 32, SHOPIFY_SECRET, "orders/create",
                            payloads.shopify_order())
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_woocommerce_statuses_map_to_the_right_events(client):
    store = Store(client)
    store.map_all()
    woo = store.connect("woocommerce")
    url, secret = path_of(woo), woo["secret"]
    for status, event in (("pending", "created"), ("processing", "paid"), ("completed", "shipped"),
                          ("refunded", "refunded")):
        topic = "order.created" if status == "pending" else "order.updated"
        answer = post_woocommerce(client, url, secret, payloads.woo_order(status=status), topic=topic)
        assert answer.status_code == 200, answer.get_json()
        assert [(e["event"], e["outcome"]) for e in answer.get_json()["events"]] == [(event, "applied")]
    order = store.call("GET", "/api/v1/orders/727").get_json()
    assert (order["name"], order["wa_id"], order["customer_name"], order["total"]) == (
        "#727", "14155550132", "John Doe", "29.35")
    assert [i["name"] for i in order["items"]] == ["Woo Single #1", "Ship Your Idea &ndash; Color: Black, Size: M Test"]
    assert [n[1] for n in store.notifications()] == ["created", "paid", "shipped", "refunded"]


def test_woocommerce_signature_and_ping(client):
    store = Store(client)
    woo = store.connect("woocommerce")
    url = path_of(woo)
    before = store.counts()
    assert post_woocommerce(client, url, None, payloads.woo_order()).status_code == 401
    assert post_woocommerce(client, url, "not-the-secret-at-all", payloads.woo_order()).status_code == 403
    # WooCommerce pings a new webhook's URL, unsigned, and wants a 2xx.
    ping = client.post(url, data=b"webhook_id=3", content_type="application/x-www-form-urlencoded")
    assert ping.status_code == 200 and ping.get_json()["events"] == []
    assert store.counts() == before


def test_a_signed_body_that_is_not_json_is_a_400(client):
    store = Store(client)
    woo = store.connect("woocommerce")
    body = b"{not json"
    response = client.post(path_of(woo), data=body, headers={"X-WC-Webhook-Signature": sign(woo["secret"], body)})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_request"


def test_the_secret_is_stored_encrypted_and_a_new_one_keeps_the_url(client, app):
    store = Store(client)
    first = store.connect("woocommerce")
    second = store.connect("woocommerce")
    assert second["url"] == first["url"] and second["secret"] != first["secret"]
    with app.app_context():
        row = db.session.scalar(select(ShopConnection).where(ShopConnection.tenant_id == store.tenant_id))
        assert second["secret"] not in row.secret_encrypted
        db.session.remove()
    assert post_woocommerce(client, path_of(first), first["secret"], payloads.woo_order()).status_code == 403


def test_a_plan_without_order_notifications_refuses_the_webhook(client):
    store = Store(client, "starter")
    with client.application.app_context():
        from saas.orders import shops
        from saas.tenants.services import tenant_snapshot

        row, secret = shops.connect(db.session, tenant_snapshot(store.tenant_id), "woocommerce")
        url = f"/webhooks/shops/{row.token}"
        db.session.remove()
    response = post_woocommerce(client, url, secret, payloads.woo_order())
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "feature_not_in_plan"
    assert store.counts()["orders"] == 0
