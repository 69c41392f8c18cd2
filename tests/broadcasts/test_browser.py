"""A broadcast in a real browser at phone width (headless Chromium through Playwright, as
tests/portal/test_browser.py): upload a file of numbers, bind the variables, confirm the check, watch the
report complete with its chart, under the Content-Security-Policy."""
from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.broadcasts.helpers import Shop, run, sends_to  # noqa: E402
from tests.portal.test_browser import PHONE, browser, open_page  # noqa: E402,F401

PASSWORD = "correct horse"


def test_upload_numbers_confirm_the_check_and_watch_it_complete(app, graph, open_page):  # noqa: F811
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3, name=lambda i: ["Ayşe", None, "Mehmet"][i])
    watched = open_page(viewport=PHONE)
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email").fill(shop.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/broadcasts")
    page.get_by_role("button", name="New broadcast").click()
    promo = page.locator("#pick option", has_text="promo (en_US, marketing)").get_attribute("value")
    page.select_option("#pick", promo)
    page.get_by_role("button", name="Next").click()
    page.locator("#name").fill("Spring in the browser")
    page.set_input_files("#upload", files=[{"name": "numbers.csv", "mimeType": "text/csv",
                                            "buffer": b"number\n905320000000\n905320000001\n905320000002\n"}])
    page.locator("#v0_default").fill("there")
    page.select_option("#v1_source", "attr")
    page.locator("#v1_value").fill("code")
    page.get_by_role("button", name="Check who it reaches").click()
    expect(page.locator("#check-recipients")).to_contain_text("3 of 3 contacts")
    expect(page.locator("#check-samples")).to_contain_text("there")
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("#broadcast-status")).to_have_text("running")
    run(app)
    page.reload()
    expect(page.locator("#broadcast-status")).to_have_text("completed")
    expect(page.locator("#count-sent")).to_have_text("3")
    expect(page.locator("#sends-chart-plot")).to_have_attribute("data-drawn", "true")
    assert sorted(sends_to(graph)) == ["905320000000", "905320000001", "905320000002"]
    watched.assert_clean()
