"""The contacts pages in a real browser at phone width: import a CSV (map its columns, watch the progress bar),
see the contacts, label some by ticking them, open one. No console errors, no CSP violations, no sideways
scrolling."""
from __future__ import annotations

import re

import pytest

from saas.extensions import db
from tests.factories import make_tenant
from tests.portal.test_browser import PHONE, browser, open_page  # noqa: F401 (fixtures)

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

PASSWORD = "correct horse battery"
CSV = ("Phone;Full name;Tags\n"
       "+90 532 111 11 11;Ayşe Yılmaz;vip|izmir\n"
       "+90 532 111 11 12;Mehmet Kaya;\n"
       "not a number;Nobody;\n"
       "+49 151 1234 5678;Jonas Weber;berlin\n")


def test_a_tenant_imports_a_csv_and_works_with_its_contacts_on_a_phone(app, open_page, live_server):  # noqa: F811
    with app.app_context():
        make_tenant("starter", email="contacts@example.com", password=PASSWORD)
        db.session.remove()
    watched = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page = watched.page

    def fits():
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"
        watched.assert_clean()

    page.goto("/login")
    page.get_by_label("Email").fill("contacts@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    page.locator("header nav").get_by_role("link", name="Contacts").click()
    expect(page.locator("#no-contacts")).to_be_visible()
    fits()

    page.get_by_role("button", name="Import CSV").click()
    page.set_input_files("#file", files=[{"name": "customers.csv", "mimeType": "text/csv",
                                          "buffer": CSV.encode()}])
    page.get_by_role("button", name="Upload and map columns").click()
    expect(page.locator("h1")).to_have_text("What does each column hold?")
    expect(page.get_by_label("Column “Phone”")).to_have_value("wa_id")
    expect(page.get_by_label("Column “Tags”")).to_have_value("labels")
    page.get_by_label("Column “Full name”").select_option("name")
    fits()
    page.get_by_role("button", name="Import").click()
    # The progress page refreshes itself (a meta refresh) until the job is done.
    expect(page.locator("#import-status")).to_have_text("done", timeout=30_000)
    expect(page.locator("#import-created")).to_have_text("3")
    expect(page.locator("#import-failed")).to_have_text("1")
    expect(page.locator("#errors-link")).to_be_visible()
    fits()

    page.get_by_role("button", name="See your contacts").click()
    rows = page.locator("#contact-list tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#contact-list")).to_contain_text("Ayşe Yılmaz")
    fits()

    page.get_by_label("Tick Mehmet Kaya").check()
    page.get_by_label("Tick Jonas Weber").check()
    page.get_by_label("Label to add or remove").fill("Spring Sale")
    page.get_by_role("button", name="Apply to ticked").click()
    expect(page.locator(".flash.success")).to_contain_text("“spring sale” added to 2 contacts.")
    page.get_by_label("Filter by label").select_option("spring sale")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(2)
    fits()

    page.get_by_role("link", name="Jonas Weber").click()
    expect(page.locator("#contact-wa-id")).to_have_text("+4915112345678")
    expect(page.locator("#contact-labels")).to_contain_text("spring sale")
    expect(page.locator("#contact-history")).to_contain_text("labelled")
    fits()
