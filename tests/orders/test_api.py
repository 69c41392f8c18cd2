"""The orders API's gate, tenant isolation and refusals: every bad input is the JSON error envelope, never a
500, and writes nothing."""
from __future__ import annotations

import pytest

from tests.orders.helpers import CUSTOMER, Store


def test_a_plan_without_order_notifications_gets_403_with_the_upgrade_link(client):
    store = Store(client, "starter")
    for method, path, body in (("GET", "/api/v1/orders", None), ("GET", "/api/v1/orders/1", None),
                               ("POST", "/api/v1/orders/1/events", {"event": "paid"}),
                               ("GET", "/api/v1/order-notifications", None),
                               ("PUT", "/api/v1/order-notifications/paid", {"template": {"name": "order_update"}}),
                               ("PUT", "/api/v1/shop-connections/shopify", None)):
        response = store.call(method, path, body)
        assert response.status_code == 403, path
        error = response.get_json()["error"]
        assert error["code"] == "feature_not_in_plan" and error["upgrade_url"].endswith("/billing"), path
    assert store.counts()["orders"] == 0


def test_another_tenants_orders_mappings_and_connections_are_not_found(client):
    mine, theirs = Store(client), Store(client)
    theirs.map("paid")
    theirs.event("T-1", "paid", phone=CUSTOMER)
    theirs.connect("shopify")
    assert mine.call("GET", "/api/v1/orders/T-1").status_code == 404
    assert mine.call("GET", "/api/v1/orders").get_json()["data"] == []
    assert mine.call("GET", "/api/v1/order-notifications/paid").status_code == 404
    assert mine.call("DELETE", "/api/v1/order-notifications/paid").status_code == 404
    assert mine.call("GET", "/api/v1/shop-connections").get_json()["data"] == []
    assert mine.call("POST", "/api/v1/order-notifications/paid/preview", {"order": "T-1"}).status_code == 404
    # The same reference is another order for each tenant.
    assert mine.event("T-1", "created", phone=CUSTOMER).status_code == 201
    assert theirs.call("GET", "/api/v1/orders/T-1").get_json()["state"] == "paid"
    assert [n[1] for n in theirs.notifications()] == ["paid"] and mine.notifications() == []


@pytest.mark.parametrize("body, field", [
    ({}, "event"),
    ({"event": "teleported"}, "event"),
    ({"event": "requested"}, "event"),
    ({"event": "paid", "occurred_at": "yesterday"}, "occurred_at"),
    ({"event": "paid", "phone": "12"}, "phone"),
    ({"event": "paid", "phone": "not a number at all"}, "phone"),
    ({"event": "paid", "total": "1e400"}, "total"),
    ({"event": "paid", "currency": "dollars"}, "currency"),
    ({"event": "paid", "tracking_url": "javascript:alert(1)"}, "tracking_url"),
    ({"event": "paid", "tracking_number": "x" * 101}, "tracking_number"),
    ({"event": "paid", "customer_name": "A\u0007B"}, "customer_name"),
    ({"event": "paid", "items": [{"quantity": 1}]}, "items"),
    ({"event": "paid", "items": [{"name": "x"}] * 101}, "items"),
    ({"event": "paid", "name": "\u202egnp.exe"}, "name"),
])
def test_bad_event_bodies_are_400_field_by_field_and_write_nothing(client, body, field):
    store = Store(client)
    response = store.event("B-1", **body) if body else store.call("POST", "/api/v1/orders/B-1/events", {})
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and field in error["details"], error
    assert store.counts()["orders"] == 0


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"paid"', b"{" * 2000, b'{"event": "paid", "name": "a\\u0000"}'])
def test_bodies_that_are_not_a_json_object_are_400(client, raw):
    store = Store(client)
    response = client.post("/api/v1/orders/B-2/events", data=raw, headers={
        **store.api.headers, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("reference", ["a" * 101, "-leading-dash", "with space", "%00", "caf%C3%A9"])
def test_a_reference_that_cannot_name_an_order_is_404(client, reference):
    store = Store(client)
    assert store.event(reference, "paid").status_code == 404
    assert store.call("GET", f"/api/v1/orders/{reference}").status_code == 404


@pytest.mark.parametrize("body", [
    {"template": "order_update"}, {"template": {"name": 7}}, {"template": {"name": "order_update", "language": 5}},
    {"template": {"name": "order_update"}, "phone_number_id": ["x"]},
    {"template": {"name": "order_update"}, "phone_number_id": "999"},
    {"template": {"name": "order_update"}, "variables": "all"},
    {"template": {"name": "order_update"}, "variables": {"body.1": {"field": "reference"}}},
    {"template": {"name": "seasonal_promotion"}}, {"template": {"name": "sandbox_paused"}},
])
def test_bad_mappings_are_400(client, body):
    store = Store(client)
    response = store.call("PUT", "/api/v1/order-notifications/paid", body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert store.call("GET", "/api/v1/order-notifications").get_json()["data"] == []


def test_unknown_events_and_platforms_are_404(client):
    store = Store(client)
    assert store.map("teleported").status_code == 404
    assert store.call("PUT", "/api/v1/shop-connections/magento").status_code == 404
    assert store.call("PUT", "/api/v1/shop-connections/shopify", {"secret": "short"}).status_code == 400
    assert store.call("PUT", "/api/v1/shop-connections/shopify", {"secret": "x" * 30 + "\u00e9"}).status_code == 400


def test_the_list_pages_newest_first_and_filters_by_state(client):
    store = Store(client)
    for n in range(5):
        store.event(f"L-{n}", "paid" if n % 2 else "created", phone=CUSTOMER)
    page = store.call("GET", "/api/v1/orders?limit=2").get_json()
    assert [o["reference"] for o in page["data"]] == ["L-4", "L-3"] and page["has_more"]
    rest = client.get(page["next"], headers=store.api.headers).get_json()
    assert [o["reference"] for o in rest["data"]] == ["L-2", "L-1"]
    assert [o["reference"] for o in store.call("GET", "/api/v1/orders?state=paid").get_json()["data"]] == [
        "L-3", "L-1"]
    assert store.call("GET", "/api/v1/orders?state=lost").status_code == 400
