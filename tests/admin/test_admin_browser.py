"""The admin console in a real browser at desktop and phone widths: its tables never scroll sideways (on a
phone each row stacks into "label: value" lines, like the portal's), under the Content-Security-Policy."""
from __future__ import annotations

import re

import pytest

from saas.extensions import db
from saas.tenants import services as accounts
from tests.admin.test_tenants import quick_tenants
from tests.factories import make_tenant
from tests.portal.test_browser import browser, open_page  # noqa: F401  (fixtures)
from tests.portal.test_polish_browser import SIZES, fits
from playwright.sync_api import expect  # noqa: E402

ADMIN_EMAIL = "root@platform.example.com"
ADMIN_PASSWORD = "admin password"
# Long words are what push a table wider than a phone: a name and an address with no place to break.
LONG_NAME = "Supercalifragilisticexpialidocious Holdings International"
LONG_EMAIL = "accounts-payable-department@supercalifragilisticexpialidocious.example.com"


@pytest.fixture
def console(app):
    with app.app_context():
        accounts.create_platform_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        tenant_id = make_tenant("pro", name=LONG_NAME, email=LONG_EMAIL).id
        db.session.remove()
    quick_tenants(app, 3)
    return tenant_id


def log_in(page):
    page.goto("/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))


def stacked_label(page, cell_selector: str) -> str:
    return page.locator(cell_selector).first.evaluate("c => getComputedStyle(c, '::before').content")


@pytest.mark.parametrize("size", SIZES)
def test_admin_tables_fit_the_screen(size, app, console, open_page):
    options = SIZES[size]
    width = options["viewport"]["width"]
    watched = open_page(**options)
    page = watched.page
    log_in(page)

    page.goto("/admin/tenants")
    expect(page.locator("#tenant-list")).to_contain_text(LONG_NAME)
    expect(page.locator("#tenant-list")).to_contain_text(LONG_EMAIL)
    fits(page, width)
    owner = f"#tenant-{console} td:nth-child(3)"
    if size == "phone":
        # Stacked: each cell says what it is, and the header row is for screen readers only.
        assert stacked_label(page, owner) == '"Owner"'
        expect(page.locator("#tenant-list thead")).not_to_be_in_viewport()
    else:
        assert stacked_label(page, owner) in ("none", "normal")
        expect(page.locator("#tenant-list thead")).to_be_visible()

    page.goto("/admin/plans")
    expect(page.locator("#plan-row-pro")).to_contain_text("Pro")
    fits(page, width)
    if size == "phone":
        assert stacked_label(page, "#plan-row-pro td.subscribers") == '"Subscribers"'
        expect(page.locator("#plan-list thead")).not_to_be_in_viewport()
    else:
        expect(page.locator("#plan-list thead")).to_be_visible()

    for path in ("/admin/", f"/admin/tenants/{console}", "/admin/audit"):
        page.goto(path)
        fits(page, width)
    watched.assert_clean()
