"""A customer's WhatsApp cart (an inbound ``order`` message) becomes an order in ``requested`` with its
items, in the customer's inbox thread, forwarded to the tenant's webhook; confirming it sends the next
notification."""
from __future__ import annotations

from sqlalchemy import select

from saas.extensions import db
from saas.inbox.models import Entry
from saas.messaging.models import WebhookDelivery, WebhookEndpoint
from saas.messaging.tenant_webhooks.endpoints import new_secret
from saas.crypto import encrypt_token
from saas.orders import services
from saas.messaging.outbound import send_service
from saas.tenants.services import tenant_snapshot
from tests import whatsapp_payloads as wa
from tests.inbox.helpers import CUSTOMER, make_shop, post_inbound
from tests.orders.helpers import Store

CART = {"catalog_id": "194836987003835", "text": "Blue ones please", "product_items": [
    {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"},
    {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 25.5, "currency": "USD"}]}


def endpoint(app, tenant_id: int) -> None:
    with app.app_context():
        db.session.add(WebhookEndpoint(tenant_id=tenant_id, url="https://hooks.example.com/wa", active=True, secret_hint="test",
                                       signing_secret_encrypted=encrypt_token(new_secret())))
        db.session.commit()
        db.session.remove()


def test_an_inbound_cart_becomes_a_requested_order_forwarded_and_in_the_thread(app, client, whatsapp):
    shop = make_shop(app, whatsapp, "pro")
    endpoint(app, shop.tenant_id)
    store = Store(client, tenant_id=shop.tenant_id)
    message = wa.inbound("order", CART, sender=CUSTOMER)
    post_inbound(app, client, shop, message, name="Sheena Nelson")
    post_inbound(app, client, shop, message, name="Sheena Nelson")  # WhatsApp repeats itself
    [order] = store.call("GET", "/api/v1/orders").get_json()["data"]
    assert (order["state"], order["source"], order["wa_id"], order["customer_name"]) == (
        "requested", "whatsapp", CUSTOMER, "Sheena Nelson")
    assert [(i["sku"], i["quantity"], i["price"]) for i in order["items"]] == [
        ("di9ozbzfi4", 2, "30"), ("nqryix03ez", 1, "25.5")]
    assert (order["total"], order["currency"]) == ("85.5", "USD")
    with app.app_context():
        forwarded = db.session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == shop.tenant_id, WebhookDelivery.event_type == "order.requested")).all()
        assert len(forwarded) == 1
        assert forwarded[0].payload["order"]["reference"] == order["reference"]
        lines = db.session.scalars(select(Entry.text).where(Entry.tenant_id == shop.tenant_id)
                                   .order_by(Entry.id)).all()
        assert any(line.endswith("requested on WhatsApp") for line in lines), lines
        db.session.remove()


def test_confirming_a_cart_sends_the_created_notification(app, client, whatsapp):
    shop = make_shop(app, whatsapp, "pro")
    store = Store(client, tenant_id=shop.tenant_id)
    whatsapp.add_template(shop.waba_id, "order_confirmed", language="en_US", category="UTILITY",
                       components=[{"type": "BODY", "text": "Thanks, your order is confirmed."}])
    from tests.messaging.live import add_template

    add_template(app, shop.tenant_id, shop.waba_id, "order_confirmed")
    with app.app_context():
        from saas.orders.models import NotificationMapping

        db.session.add(NotificationMapping(tenant_id=shop.tenant_id, event="created",
                                           phone_number_id=shop.number.id, template_name="order_confirmed",
                                           template_language="en_US", category="UTILITY",
                                           variables={"body.1": {"value": "friend"}}))
        db.session.commit()
        db.session.remove()
    post_inbound(app, client, shop, wa.inbound("order", CART, sender=CUSTOMER))
    [order] = store.call("GET", "/api/v1/orders").get_json()["data"]
    assert store.notifications() == []
    with app.app_context():
        applied = services.confirm(db.session, send_service(app), tenant_snapshot(shop.tenant_id), order["id"])
        db.session.remove()
    assert applied.applied
    assert store.notifications() == [(order["reference"], "created", "sent")]
    assert [b["template"]["name"] for b in whatsapp.sends() if isinstance(b, dict) and b.get("type") == "template"] \
        == ["order_confirmed"]


def test_a_cart_for_a_plan_without_order_notifications_stays_a_message(app, client, whatsapp):
    shop = make_shop(app, whatsapp, "starter")
    post_inbound(app, client, shop, wa.inbound("order", CART, sender=CUSTOMER))
    with app.app_context():
        from saas.orders.models import Order

        assert db.session.scalars(select(Order).where(Order.tenant_id == shop.tenant_id)).all() == []
        db.session.remove()


def cart_event(app, store, wamid: str, wa_id: str, name: str):
    """WhatsApp's cart from ``wa_id`` to the store's number as messaging publishes it, and the app's engine."""
    from saas.messaging.domain_events import NumberRef, message_received
    from saas.messaging.models import PhoneNumber

    with app.app_context():
        number = db.session.scalar(select(PhoneNumber).where(PhoneNumber.tenant_id == store.tenant_id))
        ref = NumberRef(number.id, store.tenant_id, number.phone_number_id, number.display_number, None)
        engine = db.engine
        db.session.remove()
    event = message_received(ref, wamid, wa_id, wa.inbound("order", CART, sender=wa_id),
                             contact=wa.contact(wa_id, name=name))
    return event, engine


def test_the_consumer_needs_no_app_context_and_takes_a_repeated_event_once(app, client):
    """As the outbox delivers: a bare connection, no request, no app context, the same event twice."""
    from flask import has_app_context

    from saas.orders.consumers import take
    from saas.orders.models import Order

    store = Store(client)
    event, engine = cart_event(app, store, "wamid.cart-1", "905320000001", "Ayşe")
    assert not has_app_context()
    with engine.begin() as conn:
        assert take(conn, [event]) == 1
    with engine.begin() as conn:
        assert take(conn, [event]) == 0
    with app.app_context():
        [order] = db.session.scalars(select(Order).where(Order.tenant_id == store.tenant_id)).all()
        assert (order.state, order.customer_name, order.wa_id) == ("requested", "Ayşe", "905320000001")
        db.session.remove()


def test_a_carts_contact_made_inside_a_savepoint_is_kept_with_its_order(app, client):
    """The outbox delivers a failed batch's events again one at a time, each in a savepoint of its own: the
    contact made there for a new customer must outlive the contact's own session, as its order does."""
    from saas.contacts.models import Contact
    from saas.orders.consumers import take
    from saas.orders.models import Order

    store = Store(client)
    event, engine = cart_event(app, store, "wamid.cart-2", "905320000002", "Deniz")
    with engine.begin() as conn:
        with conn.begin_nested():
            assert take(conn, [event]) == 1
    with app.app_context():
        [order] = db.session.scalars(select(Order).where(Order.tenant_id == store.tenant_id)).all()
        contact = db.session.get(Contact, order.contact_id)
        assert contact is not None and (contact.wa_id, contact.name) == ("905320000002", "Deniz")
        db.session.remove()
