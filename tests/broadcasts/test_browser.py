"""A broadcast in a real browser at phone width (headless Chromium through Playwright, as
tests/portal/test_browser.py): upload a file of numbers, bind the variables, confirm the check, watch the
report complete with its chart, under the Content-Security-Policy; and the whole way from a CSV of contacts
imported through the contacts pages to a broadcast to one of its labels, checked by a job, confirmed, and
watched to completion."""
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


CONTACTS = ("Phone;Full name;Tags\n"
            "+90 532 111 11 11;Ayşe Yılmaz;spring|vip\n"
            "+90 532 111 11 12;;spring\n"
            "+90 532 111 11 13;Mehmet Kaya;spring\n"
            "+49 151 1234 5678;Jonas Weber;spring\n"
            "+1 415 555 0100;Sam Lee;spring\n"
            "+90 532 111 11 14;Zeynep Ak;autumn\n"
            "not a number;Nobody;spring\n")
REACHED = ["4915112345678", "905321111111", "905321111112", "905321111113"]


def test_import_contacts_then_broadcast_to_a_label_confirm_its_check_and_watch_it_complete(
        app, graph, open_page, monkeypatch):  # noqa: F811
    # Past two contacts the check runs as a job: the page says so and updates itself until it is ready.
    monkeypatch.setitem(app.config, "BROADCAST_CHECK_INLINE_MAX", 2)
    shop = Shop(app, graph)
    shop.template()
    watched = open_page(viewport=PHONE)
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email").fill(shop.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto("/contacts/import")
    page.set_input_files("#file", files=[{"name": "spring.csv", "mimeType": "text/csv",
                                          "buffer": CONTACTS.encode()}])
    page.locator("#opt_in").check()
    page.select_option("#phone_number_id", shop.phone_number_id)
    page.locator("#consent_proof").fill("Ticked “send me offers” at checkout")
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_label("Column “Full name”").select_option("name")
    expect(page.get_by_label("Column “Tags”")).to_have_value("labels")
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-status")).to_have_text("done", timeout=30_000)
    expect(page.locator("#import-created")).to_have_text("6")
    expect(page.locator("#import-failed")).to_have_text("1")

    page.goto("/broadcasts/new")
    promo = page.locator("#pick option", has_text="promo (en_US, marketing)").get_attribute("value")
    page.select_option("#pick", promo)
    page.get_by_role("button", name="Next").click()
    page.locator("#name").fill("Spring to the imported")
    page.locator("#labels").fill("spring")
    page.locator("#v0_default").fill("there")
    page.select_option("#v1_source", "value")
    page.locator("#v1_value").fill("SPRING")
    page.get_by_role("button", name="Check who it reaches").click()
    # Checking (the job may be done before the page is drawn), then the check, on the page by itself.
    expect(page.locator("#check-recipients")).to_contain_text("4 of 5 contacts", timeout=30_000)
    expect(page.locator("#check-dropped")).to_contain_text("marketing to us number")
    expect(page.locator("#check-samples")).to_contain_text("there")
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("#broadcast-status")).to_have_text("running")
    run(app)
    # No reload: the page of a running broadcast updates itself.
    expect(page.locator("#broadcast-status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#count-sent")).to_have_text("4")
    expect(page.locator("#count-skipped")).to_have_text("1")
    assert sorted(sends_to(graph)) == REACHED
    bodies = [body for body in graph.sends() if isinstance(body, dict)]
    assert all(body["template"]["name"] == "promo" for body in bodies)
    watched.assert_clean()
