"""Order tracking in a real browser at phone width (headless Chromium, as tests/portal/test_browser.py): map
the templates, connect WooCommerce, the shop posts a signed order webhook, and the order's timeline shows
each step with its message walking to delivered, under the Content-Security-Policy."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.orders import payloads  # noqa: E402
from tests.orders.helpers import Store, sign  # noqa: E402
from tests.portal.test_browser import PHONE, browser, http, open_page  # noqa: E402,F401

PASSWORD = "correct horse"


def test_map_templates_post_a_shop_webhook_and_see_the_message_delivered(app, client, http, live_server,  # noqa: F811
                                                                         open_page):  # noqa: F811
    store = Store(client)
    with app.app_context():
        from sqlalchemy import select

        from saas.extensions import db
        from saas.tenants.models import User

        email = db.session.scalar(select(User.email).where(User.tenant_id == store.tenant_id))
        db.session.remove()
    watched = open_page(viewport=PHONE)
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/orders")
    page.locator("#mappings-link").click()
    for event in ("created", "paid"):
        page.locator(f"#edit-{event}").click()
        order_update = page.locator("#pick option", has_text="order_update (en_US)").get_attribute("value")
        page.select_option("#pick", order_update)
        page.locator("#choose-template").click()
        page.locator("#save-mapping").click()
        expect(page.locator("#preview")).to_contain_text("order_update")
        page.goto("/order-notifications")
        expect(page.locator(f"#mapping-{event}")).to_contain_text("order_update")

    page.goto("/shop-connection")
    page.locator("#connect-woocommerce").click()
    url = page.locator("#woocommerce-url").inner_text().strip()
    secret = page.locator("#woocommerce-secret").inner_text().strip()
    assert url.startswith(live_server + "/webhooks/shops/")

    body = payloads.json_of(payloads.woo_order(status="processing"))
    answer = http.post(url, data=body, timeout=15, headers={
        "Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Signature": sign(secret, body)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"][0]["outcome"] == "applied"

    assert app.extensions["background"].join()  # the sandbox's receipts, a moment after the send
    page.goto("/orders")
    page.locator("#order-list a", has_text="#727").click()
    expect(page.locator("#order-state")).to_have_text("paid")
    expect(page.locator("#timeline .timeline-event")).to_have_count(1)
    message = page.locator("#timeline .timeline-message")
    expect(message).to_contain_text("order_update")
    expect(message.locator(".message-status")).to_have_text(re.compile(r"^(delivered|read)$"))
    watched.assert_clean()
