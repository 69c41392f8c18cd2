"""Automation in Chromium on a phone: an owner makes a keyword rule and business hours with a holiday, a
customer's message gets the automated answer, and the replay preview shows it; every page fits the width."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.automation.helpers import pro_shop, sent_to  # noqa: E402
from tests.inbox.helpers import CUSTOMER, post_inbound, text  # noqa: E402
from tests.portal.test_browser import PHONE, browser, open_page  # noqa: E402,F401


def test_an_owner_sets_up_a_keyword_rule_and_hours_on_a_phone(app, client, whatsapp, open_page):
    shop = pro_shop(app, whatsapp)
    watched = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page = watched.page

    def fits():
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"

    page.goto("/login")
    page.get_by_label("Email").fill(shop.owner_email)
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Log in").click()
    page.goto("/automation")
    fits()
    page.locator("#new-rule").click()
    page.get_by_label("Name", exact=True).fill("Prices")
    page.locator("#enabled").check()
    page.get_by_label("Keyword, pattern or button payload").fill("price")
    page.locator("#reply_text").fill("Our prices: example.com/prices")
    fits()
    page.get_by_role("button", name="Save rule").click()
    expect(page).to_have_url(re.compile(r"/automation/rules/\d+$"))
    rule_url = page.url

    page.goto("/automation")
    expect(page.locator("#rule-list")).to_contain_text("Prices")
    page.locator("#hours-links a").first.click()
    page.locator("#open_0").fill("09:00")
    page.locator("#close_0").fill("17:00")
    page.locator("#holidays").fill("2026-12-25")
    page.get_by_role("button", name="Save business hours").click()
    expect(page.locator("#holidays")).to_have_value("2026-12-25")
    fits()

    post_inbound(app, client, shop, text("what is the price?"))
    assert [m["text"]["body"] for m in sent_to(whatsapp, CUSTOMER)] == ["Our prices: example.com/prices"]
    page.goto(rule_url)
    page.get_by_role("button", name="Try it on the last 30 days").click()
    expect(page.locator("#replay-matched")).to_have_text("1")
    expect(page.locator("#replay-preview")).to_contain_text("what is the price?")
    fits()
    watched.assert_clean()
