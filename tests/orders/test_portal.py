"""The portal's order pages: map a template per step (with its variables and preview), connect a shop and
see its URL and secret, follow an order's timeline, confirm a WhatsApp cart; the plan's gate, the roles,
and another tenant's order not found."""
from __future__ import annotations

import re

from sqlalchemy import update

from saas.extensions import db
from saas.messaging.models import Template
from tests.broadcasts.helpers import Shop
from tests.conftest import csrf_token
from tests.orders.helpers import CUSTOMER, Store
from tests.orders.test_mappings import SHIPPED
from tests.portal.team_helpers import Team


def pick_of(page: str, name: str) -> str:
    return re.search(rf'<option value="([0-9]+\|{name}\|en_US)"', page).group(1)


def test_map_a_template_with_variables_and_see_the_preview(app, client, auth, graph):
    shop = Shop(app, graph)
    shop.template("shipping_update", category="UTILITY", components=SHIPPED)
    shop.template("promo", category="MARKETING")
    assert auth.login(shop.email).status_code in (302, 303)
    page = client.get("/order-notifications/shipped").get_data(as_text=True)
    assert "promo" not in page  # only utility templates are offered
    pick = pick_of(page, "shipping_update")
    form = client.get(f"/order-notifications/shipped?pick={pick}").get_data(as_text=True)
    assert form.count("<fieldset") == 4
    token = csrf_token(client, f"/order-notifications/shipped?pick={pick}")
    empty = client.post("/order-notifications/shipped", data={
        "csrf_token": token, "pick": pick, "v0_source": "value", "v0_text": "",
        "v1_source": "name", "v2_source": "carrier", "v3_source": "tracking_url"})
    assert empty.status_code == 400 and "A fixed value cannot be empty." in empty.get_data(as_text=True)
    saved = client.post("/order-notifications/shipped", data={
        "csrf_token": token, "pick": pick, "v0_source": "customer_name", "v0_text": "there",
        "v1_source": "name", "v2_source": "carrier", "v2_text": "our courier", "v3_source": "tracking_url"})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    page = client.get("/order-notifications/shipped").get_data(as_text=True)
    assert ('id="preview-text">Hi Ayşe Yılmaz, order #1001 is on its way with UPS: '
            'https://www.ups.com/WebTracking?trackNums=1Z2345<') in page
    listing = client.get("/order-notifications").get_data(as_text=True)
    assert "shipping_update" in listing and "now marketing" not in listing
    with app.app_context():
        db.session.execute(update(Template).where(Template.tenant_id == shop.tenant_id,
                                                  Template.name == "shipping_update").values(category="MARKETING"))
        db.session.commit()
        db.session.remove()
    assert "now marketing" in client.get("/order-notifications").get_data(as_text=True)
    assert 'id="recategorised-warning"' in client.get("/order-notifications/shipped").get_data(as_text=True)
    token = csrf_token(client, "/order-notifications/shipped")
    assert client.post("/order-notifications/shipped/delete", data={"csrf_token": token}).status_code == 302
    assert "shipping_update" not in client.get("/order-notifications").get_data(as_text=True)


def test_connect_shops_and_see_the_url_and_secret(app, client, auth):
    store = Store(client)
    with app.app_context():
        from saas.tenants.models import User
        from sqlalchemy import select

        email = db.session.scalar(select(User.email).where(User.tenant_id == store.tenant_id))
        db.session.remove()
    auth.login(email)
    token = csrf_token(client, "/shop-connection")
    assert client.post("/shop-connection/woocommerce", data={"csrf_token": token}).status_code == 302
    short = client.post("/shop-connection/shopify", data={"csrf_token": token, "secret": "too short"})
    assert short.status_code == 400 and "field-error" in short.get_data(as_text=True)
    assert client.post("/shop-connection/shopify", data={
        "csrf_token": token, "secret": "shpss_" + "a" * 32}).status_code == 302
    page = client.get("/shop-connection").get_data(as_text=True)
    assert 'id="shopify-secret">shpss_' + "a" * 32 in page
    assert re.search(r'id="woocommerce-url">http://[^<]+/webhooks/shops/[A-Za-z0-9_-]{20,}<', page)
    assert re.search(r'id="woocommerce-secret">[A-Za-z0-9_-]{40,}<', page)


def test_the_timeline_and_confirming_a_requested_order(app, client, auth):
    store = Store(client)
    store.map_all()
    store.event("T-1", "created", phone=CUSTOMER, customer_name="Ayşe", total="10.00", currency="EUR",
                items=[{"name": "Çay", "quantity": 3}])
    store.event("T-1", "shipped", tracking_number="1Z", carrier="UPS")
    with app.app_context():
        from saas.orders.fields import OrderData
        from saas.orders.services import apply
        from saas.tenants.models import User
        from sqlalchemy import select

        apply(db.session.connection(), store.tenant_id, "CART-1", "requested", OrderData(phone=CUSTOMER),
              source="whatsapp")
        db.session.commit()
        email = db.session.scalar(select(User.email).where(User.tenant_id == store.tenant_id))
        db.session.remove()
    auth.login(email)
    listing = client.get("/orders").get_data(as_text=True)
    assert "T-1" in listing and "CART-1" in listing
    order_id = re.search(r'href="/orders/([0-9]+)">T-1<', listing).group(1)
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert page.count('class="timeline-event"') == 2 and page.count('class="timeline-message"') == 2
    assert "3 × Çay" in page and 'id="confirm-order"' not in page
    cart_id = re.search(r'href="/orders/([0-9]+)">CART-1<', listing).group(1)
    token = csrf_token(client, f"/orders/{cart_id}")
    assert client.post(f"/orders/{cart_id}/confirm", data={"csrf_token": token}).status_code == 302
    page = client.get(f"/orders/{cart_id}").get_data(as_text=True)
    assert 'id="order-state">created<' in page and 'id="confirm-order"' not in page
    assert ("CART-1", "created", "sent") in store.notifications()


def test_another_tenants_order_is_not_found_and_the_gate_shows_the_upgrade_link(app, client, auth):
    theirs = Store(client)
    theirs.event("X-1", "created", phone=CUSTOMER)
    with app.app_context():
        from saas.orders.models import Order
        from sqlalchemy import select

        order_id = db.session.scalar(select(Order.id).where(Order.tenant_id == theirs.tenant_id))
        db.session.remove()
    team = Team(app, plan="pro", domain="pro.example.com")
    owner = team.client("owner")
    assert owner.get(f"/orders/{order_id}").status_code == 404
    starter = Team(app, domain="starter.example.com").client("owner")
    gated = starter.get("/orders")
    assert gated.status_code == 403 and 'id="upgrade-link"' in gated.get_data(as_text=True)


def test_roles_agents_see_orders_but_not_the_settings(app):
    team = Team(app, plan="pro", domain="roles.example.com")
    agent, developer, billing = team.client("agent"), team.client("developer"), team.client("billing")
    assert agent.get("/orders").status_code == 200
    assert agent.get("/order-notifications").status_code == 403
    assert agent.get("/shop-connection").status_code == 403
    assert developer.get("/shop-connection").status_code == 200
    assert billing.get("/orders").status_code == 403
