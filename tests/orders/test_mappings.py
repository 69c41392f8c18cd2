"""The template each order event sends: an approved utility template of a number of the tenant's, its
variables filled from the order (with defaults and a preview), a template Meta recategorised as marketing
flagged and sent only with consent."""
from __future__ import annotations

from sqlalchemy import update

from saas.extensions import db
from saas.messaging.models import Template
from tests.broadcasts.helpers import Shop
from tests.orders.helpers import Store

SHIPPED = [{"type": "BODY", "text": "Hi {{1}}, order {{2}} is on its way with {{3}}: {{4}}"}]
BINDINGS = {"body.1": {"field": "customer_name", "default": "there"}, "body.2": {"field": "name"},
            "body.3": {"field": "carrier", "default": "our courier"}, "body.4": {"field": "tracking_url"}}


def live_store(app, client, graph):
    shop = Shop(app, graph)
    shop.template("shipping_update", category="UTILITY", components=SHIPPED)
    store = Store(client, tenant_id=shop.tenant_id)
    store.number = shop.phone_number_id
    return shop, store


def template_sends(graph) -> list[dict]:
    return [body["template"] for body in graph.sends() if isinstance(body, dict) and body.get("type") == "template"]


def test_variables_are_filled_from_the_order_with_defaults(app, client, graph):
    shop, store = live_store(app, client, graph)
    mapped = store.map("shipped", "shipping_update", BINDINGS, phone_number_id=shop.phone_number_id)
    assert mapped.status_code == 200, mapped.get_json()
    assert mapped.get_json()["template"] == {"name": "shipping_update", "language": "en_US", "category": "utility"}
    assert mapped.get_json()["recategorised"] is False
    store.event("A-1", "created", phone="+905320000009", name="#A-1")
    sent = store.event("A-1", "shipped", tracking_url="https://track.example.com/A-1")
    assert sent.status_code == 201 and sent.get_json()["notification"]["status"] == "sent", sent.get_json()
    [template] = template_sends(graph)
    assert template["name"] == "shipping_update"
    assert [p["text"] for p in template["components"][0]["parameters"]] == [
        "there", "#A-1", "our courier", "https://track.example.com/A-1"]


def test_a_variable_without_value_or_default_skips_the_notification_and_says_why(app, client, graph):
    shop, store = live_store(app, client, graph)
    store.map("shipped", "shipping_update", BINDINGS, phone_number_id=shop.phone_number_id)
    store.event("A-2", "shipped", phone="+905320000009")
    assert store.notifications() == [("A-2", "shipped", "skipped")]
    timeline = store.call("GET", "/api/v1/orders/A-2").get_json()["timeline"]
    assert timeline[-1]["error"]["title"] == "No value and no default for body.4."
    assert template_sends(graph) == []


def test_the_preview_fills_a_sample_or_a_named_order(app, client, graph):
    shop, store = live_store(app, client, graph)
    store.map("shipped", "shipping_update", BINDINGS, phone_number_id=shop.phone_number_id)
    sample = store.call("POST", "/api/v1/order-notifications/shipped/preview", {}).get_json()
    assert sample["text"] == ("Hi Ayşe Yılmaz, order #1001 is on its way with UPS: "
                              "https://www.ups.com/WebTracking?trackNums=1Z2345")
    assert sample["missing"] == []
    store.event("A-3", "created", phone="+905320000009", name="#A-3", customer_name="Mehmet")
    named = store.call("POST", "/api/v1/order-notifications/shipped/preview", {"order": "A-3"}).get_json()
    assert named["variables"]["body.1"] == "Mehmet" and named["missing"] == ["body.4"]
    draft = store.call("POST", "/api/v1/order-notifications/paid/preview", {
        "template": {"name": "shipping_update"}, "phone_number_id": shop.phone_number_id,
        "variables": {**BINDINGS, "body.3": {"value": "DHL"}}}).get_json()
    assert draft["variables"]["body.3"] == "DHL"


def test_a_marketing_or_unapproved_template_or_a_bad_binding_is_refused(app, client, graph):
    shop, store = live_store(app, client, graph)
    shop.template("promo", category="MARKETING", components=[{"type": "BODY", "text": "Sale!"}])
    refused = store.map("shipped", "promo", phone_number_id=shop.phone_number_id)
    assert refused.status_code == 400
    assert "utility" in refused.get_json()["error"]["details"]["template"][0]
    missing = store.map("shipped", "no_such_template", phone_number_id=shop.phone_number_id)
    assert missing.status_code == 400
    unbound = store.map("shipped", "shipping_update", {"body.1": {"field": "colour"}},
                        phone_number_id=shop.phone_number_id)
    assert unbound.status_code == 400
    assert set(unbound.get_json()["error"]["details"]["variables"]) == {"body.1", "body.2", "body.3", "body.4"}
    assert store.call("GET", "/api/v1/order-notifications").get_json()["data"] == []


def test_a_template_recategorised_as_marketing_is_flagged_and_needs_consent(app, client, graph):
    shop, store = live_store(app, client, graph)
    store.map("shipped", "shipping_update", BINDINGS, phone_number_id=shop.phone_number_id)
    store.map("delivered", "shipping_update", BINDINGS, phone_number_id=shop.phone_number_id)
    with app.app_context():
        db.session.execute(update(Template).where(Template.tenant_id == shop.tenant_id,
                                                  Template.name == "shipping_update").values(category="MARKETING"))
        db.session.commit()
        db.session.remove()
    mapping = store.call("GET", "/api/v1/order-notifications/shipped").get_json()
    assert mapping["recategorised"] is True and mapping["category_now"] == "marketing"
    # No opt-in recorded for this customer: the send service refuses, nothing goes out.
    store.event("A-4", "created", phone="+905320000009", name="#A-4")
    refused = store.event("A-4", "shipped", tracking_url="https://track.example.com/A-4").get_json()
    assert refused["notification"]["status"] == "failed"
    assert refused["notification"]["error"]["code"] == "consent_required"
    assert template_sends(graph) == []
    # A customer who opted in gets it.
    [contact] = shop.contacts(1, start=7)
    store.event("A-5", "created", phone="+905320000007", name="#A-5")
    assert store.event("A-5", "shipped", tracking_url="https://t.example.com/5").get_json()[
        "notification"]["status"] == "sent"
    assert len(template_sends(graph)) == 1


def test_an_unmapped_event_sends_nothing_again(client):
    store = Store(client)
    store.map("paid")
    assert store.call("DELETE", "/api/v1/order-notifications/paid").status_code == 204
    assert store.call("GET", "/api/v1/order-notifications/paid").status_code == 404
    store.event("A-6", "paid", phone="+905320000009")
    assert store.sent() == []
