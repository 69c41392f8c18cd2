"""The templates page in a real browser at phone width: sync, submit a template, see Meta's refusal."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from saas.extensions import db  # noqa: E402
from tests.factories import make_tenant  # noqa: E402
from tests.messaging.live import live_number  # noqa: E402
from tests.portal.test_browser import PHONE, browser, open_page  # noqa: E402,F401

PASSWORD = "correct horse battery"


def test_templates_at_phone_width(app, graph, open_page):  # noqa: F811
    with app.app_context():
        tenant = make_tenant("starter", password=PASSWORD)
        tenant_id, email = tenant.id, tenant.users[0].email
        db.session.remove()
    waba_id = live_number(app, graph, tenant_id)[2]
    graph.add_template(waba_id, "order_shipped_with_a_rather_long_name_for_a_phone", category="UTILITY")
    graph.add_template(waba_id, "spring_sale", category="MARKETING", status="REJECTED")

    watched = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page = watched.page

    def fits(refused: int = 0):
        """The page fits a phone, with no console error or CSP violation but the ``refused`` 400 answers'."""
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"
        expected = [e for e in watched.errors if "status of 400" in e]
        assert len(expected) == refused
        watched.errors[:] = [e for e in watched.errors if e not in expected]
        watched.assert_clean()

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("header nav").get_by_role("link", name="Templates").click()
    expect(page).to_have_url(re.compile(r"/templates$"))
    fits()

    page.get_by_role("button", name="Sync from WhatsApp").click()
    expect(page.locator("#template-list")).to_contain_text("spring_sale")
    expect(page.locator("#template-list")).to_contain_text("rejected")
    fits()

    page.get_by_label("Name").fill("Not Valid")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".field-error")).to_contain_text("lowercase letters")
    graph.add_template(waba_id, "made_in_whatsapp_manager")  # Meta has it; this page has not synced it yet
    page.get_by_label("Name").fill("made_in_whatsapp_manager")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("#template-error")).to_contain_text("Message template already exists")
    fits(refused=2)

    page.get_by_label("Name").fill("order_update")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("#template-list")).to_contain_text("order_update")
    expect(page.get_by_role("status")).to_contain_text("submitted to WhatsApp")
    fits()
    page.screenshot(path="/tmp/templates-phone.png", full_page=True)
