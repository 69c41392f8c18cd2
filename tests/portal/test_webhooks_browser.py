"""The webhooks page in a real browser, at phone width: register, see the secret once, follow a delivery."""
from __future__ import annotations

import re

import pytest

from saas.extensions import db
from saas.messaging.tenant_webhooks import delivery
from tests import whatsapp_payloads as wa
from tests.factories import make_tenant
from tests.portal.test_browser import PHONE, browser, http, open_page  # noqa: F401 (fixtures)
from tests.webhook_receiver import Receiver
from tests.webhooks.test_whatsapp_inbound import SECRET

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_a_tenant_registers_its_webhook_and_follows_a_delivery_on_a_phone(app, open_page, live_server, http,  # noqa: F811
                                                                          receiver):
    app.config.update(WHATSAPP_APP_SECRET=SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    try:
        with app.app_context():
            tenant = make_tenant("starter", email="hooks@example.com", password=PASSWORD)
            number = wa.add_live_number(tenant.id)
            db.session.remove()
        watched = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
        page = watched.page

        def fits():
            page.wait_for_load_state("load")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"
            watched.assert_clean()

        page.goto("/login")
        page.get_by_label("Email").fill("hooks@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/dashboard$"))
        page.locator("header nav").get_by_role("link", name="Webhooks").click()
        expect(page).to_have_url(re.compile(r"/webhooks$"))
        expect(page.locator("#no-deliveries")).to_be_visible()
        fits()

        page.get_by_label("Webhook URL").fill(receiver.url)
        page.get_by_role("button", name="Start forwarding").click()
        secret = page.locator("#new-secret-value").inner_text().strip()
        assert secret.startswith("whsec_")
        fits()
        page.goto("/webhooks")
        expect(page.locator("#secret-hint")).to_have_text(f"…{secret[-4:]}")
        assert secret not in page.content()

        body, headers = wa.signed(wa.notification(number.waba_id, ("messages", wa.messages_value(
            number, contacts=[wa.contact()], messages=[wa.inbound("text", {"body": "from a phone"})]))), SECRET)
        assert http.post(f"{live_server}/webhooks/whatsapp", data=body, headers=headers, timeout=15).status_code == 200
        assert app.extensions["background"].join()
        receiver.answers = [500]
        with app.app_context():
            delivery.deliver_due(wait_for_answers=True)
            db.session.remove()
        page.goto("/webhooks")
        row = page.locator("#deliveries tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("message.text")
        expect(row).to_contain_text("receiver says no")
        fits()
        row.get_by_role("link").click()
        expect(page.locator("#attempts tbody tr")).to_contain_text("HTTP 500")
        fits()
        page.get_by_role("button", name="Replay").click()
        expect(page).to_have_url(re.compile(r"/webhooks$"))
        # Still waiting for its next try: that retry goes now, and no second copy is made.
        expect(page.locator(".flash.success")).to_contain_text("is sent now, to your current URL")
        expect(page.locator("#deliveries tbody tr")).to_have_count(1)
        fits()
    finally:
        app.config.update(WHATSAPP_APP_SECRET=None, WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
