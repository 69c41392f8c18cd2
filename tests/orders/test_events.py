"""Order events in through the API: each state reached sends its own notification once; repeated, older
and not-allowed events change nothing and send nothing, and the answer says so."""
from __future__ import annotations

from tests.orders.helpers import CUSTOMER, CUSTOMER_WA_ID, Store


def test_each_state_reached_sends_its_template_once(client):
    store = Store(client)
    store.map_all()
    first = store.event("1001", "created", phone=CUSTOMER, customer_name="Ayşe", total="403.00", currency="USD",
                        items=[{"name": "IPod Nano - 8GB", "quantity": 2, "price": "199.00"}])
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["applied"] is True and body["outcome"] == "applied"
    assert body["order"]["state"] == "created" and body["order"]["wa_id"] == CUSTOMER_WA_ID
    assert body["notification"]["status"] == "sent"
    paid = store.event("1001", "paid")
    assert paid.status_code == 201 and paid.get_json()["notification"]["status"] == "sent"
    assert store.notifications() == [("1001", "created", "sent"), ("1001", "paid", "sent")]
    assert len(store.sent()) == 2


def test_a_repeated_event_changes_nothing_sends_nothing_and_says_so(client):
    store = Store(client)
    store.map_all()
    assert store.event("1002", "created", phone=CUSTOMER).status_code == 201
    assert store.event("1002", "shipped", tracking_number="1Z2345").status_code == 201
    before = store.counts()
    again = store.event("1002", "shipped", tracking_number="OTHER")
    assert again.status_code == 200
    body = again.get_json()
    assert body["applied"] is False and body["outcome"] == "duplicate"
    assert "nothing was sent" in body["message"]
    assert body["order"]["tracking_number"] == "1Z2345"
    assert body["notification"] is None
    assert store.counts() == before


def test_paid_after_delivered_sends_nothing(client):
    store = Store(client)
    store.map_all()
    store.event("1003", "created", phone=CUSTOMER)
    store.event("1003", "delivered")
    before = store.counts()
    late = store.event("1003", "paid")
    assert late.status_code == 200 and late.get_json()["outcome"] == "stale"
    assert late.get_json()["order"]["state"] == "delivered"
    assert store.counts() == before
    assert [n[1] for n in store.notifications()] == ["created", "delivered"]


def test_a_skipped_state_is_applied_and_sends_only_its_own_notification(client):
    store = Store(client)
    store.map_all()
    store.event("1004", "created", phone=CUSTOMER)
    jumped = store.event("1004", "out_for_delivery")
    assert jumped.status_code == 201 and jumped.get_json()["order"]["state"] == "out_for_delivery"
    assert [n[1] for n in store.notifications()] == ["created", "out_for_delivery"]
    # The states it skipped are older now: nothing.
    assert store.event("1004", "shipped").get_json()["outcome"] == "stale"
    assert store.event("1004", "packed").get_json()["outcome"] == "stale"
    assert len(store.sent()) == 2


def test_reordered_events_give_one_notification_per_state_reached(client):
    store = Store(client)
    store.map_all()
    for event in ("shipped", "created", "paid", "delivered", "shipped", "out_for_delivery", "delivered"):
        store.event("1005", event, phone=CUSTOMER)
    assert [n[1] for n in store.notifications()] == ["shipped", "delivered"]
    assert len(store.sent()) == 2


def test_cancelled_then_refunded_and_nothing_after(client):
    store = Store(client)
    store.map_all()
    store.event("1006", "paid", phone=CUSTOMER)
    assert store.event("1006", "cancelled").status_code == 201
    assert store.event("1006", "shipped").get_json()["outcome"] == "stale"
    assert store.event("1006", "refunded").status_code == 201
    assert store.event("1006", "cancelled").get_json()["outcome"] == "duplicate"
    assert [n[1] for n in store.notifications()] == ["paid", "cancelled", "refunded"]


def test_delivered_cannot_be_cancelled(client):
    store = Store(client)
    store.event("1007", "delivered", phone=CUSTOMER)
    refused = store.event("1007", "cancelled")
    assert refused.status_code == 200 and refused.get_json()["outcome"] == "not_allowed"


def test_an_event_without_a_mapping_is_applied_and_sends_nothing(client):
    store = Store(client)
    assert store.event("1008", "created", phone=CUSTOMER).get_json()["notification"] is None
    assert store.sent() == []


def test_an_order_without_a_number_records_the_notification_skipped(client):
    store = Store(client)
    store.map_all()
    body = store.event("1009", "created").get_json()
    assert body["applied"] is True
    assert store.notifications() == [("1009", "created", "skipped")]
    timeline = store.call("GET", "/api/v1/orders/1009").get_json()["timeline"]
    assert timeline[1]["error"]["title"] == "The order has no customer WhatsApp number."
