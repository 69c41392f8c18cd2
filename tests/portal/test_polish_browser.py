"""Portal polish in a real browser, at desktop and phone widths: copy buttons, the revoke confirmation, the
first steps, the logged-in redirect, and tables that never scroll sideways (not even inside their wrapper)."""
from __future__ import annotations

import re

import pytest

from tests.portal.test_browser import (  # noqa: F401  (fixtures)
    BODY, PHONE, browser, create_key, http, open_page, send, sign_up,
)
from playwright.sync_api import expect  # noqa: E402

DESKTOP = {"width": 1280, "height": 800}
SIZES = {"desktop": {"viewport": DESKTOP},
         "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True}}
CLIPBOARD = ["clipboard-read", "clipboard-write"]


def fits(page, width):
    """Nothing scrolls sideways: not the page, and not a table inside its wrapper."""
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth") == width
    hidden = page.evaluate("""Array.from(document.querySelectorAll('.table-wrap'))
        .filter(w => w.scrollWidth > w.clientWidth).map(w => w.querySelector('table').id)""")
    assert hidden == [], f"{page.url}: these tables scroll sideways: {hidden}"


def clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def copy(page, target: str) -> None:
    button = page.locator(f'button[data-copy="{target}"]')
    expect(button).to_be_visible()
    expect(button).to_have_text("Copy")
    button.click()
    expect(button).to_have_text("Copied")


@pytest.mark.parametrize("size", SIZES)
def test_copy_buttons_first_steps_confirmed_revoke_and_tables_that_fit(size, open_page, live_server, http):
    options = SIZES[size]
    width = options["viewport"]["width"]
    watched = open_page(permissions=CLIPBOARD, **options)
    page = watched.page

    sign_up(page)
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    steps = page.locator("#first-steps")
    expect(steps).to_contain_text("create an API key and send your first message")
    expect(page.locator("#step-key .badge")).to_have_text("to do")
    expect(page.locator("#step-message .badge")).to_have_text("to do")
    number_id = page.locator(".phone-number-id").first.inner_text().strip()
    copy(page, page.locator("button[data-copy^='#dash-number-']").first.get_attribute("data-copy"))
    assert clipboard(page) == number_id
    fits(page, width)

    # Logged in, the login and signup pages lead to the dashboard.
    for path in ("/login", "/signup"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/dashboard$"))

    key = create_key(page, "first")
    expect(page.get_by_label("Key name")).to_have_value("")
    copy(page, "#new-key-secret")
    assert clipboard(page) == key
    copy(page, "#curl-example")
    pasted = clipboard(page)
    assert pasted.startswith("curl -X POST") and f"Bearer {key}" in pasted and f"/{number_id}/messages" in pasted
    fits(page, width)

    # Revoking asks first: the button in the list only opens the question.
    page.get_by_label("Key name").fill("second")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_contain_text("“second”")
    row = page.locator("#key-list tbody tr").filter(has_text="second")
    confirm = row.get_by_role("button", name="Revoke “second”")
    expect(confirm).to_be_hidden()
    row.get_by_text("Revoke", exact=True).click()
    expect(confirm).to_be_visible()
    expect(row).to_contain_text("will fail at once")
    fits(page, width)
    page.goto("/keys")
    expect(page.locator("#key-list tbody tr").filter(has_text="second")).to_contain_text("active")
    row = page.locator("#key-list tbody tr").filter(has_text="second")
    row.get_by_text("Revoke", exact=True).click()
    row.get_by_role("button", name="Revoke “second”").click()
    expect(page.locator(".flash")).to_contain_text("is revoked")
    expect(page.locator("#key-list tbody tr").filter(has_text="second")).to_contain_text("revoked")
    expect(page.locator("#key-list tbody tr").filter(has_text="first")).to_contain_text("active")
    fits(page, width)

    page.goto("/dashboard")
    expect(page.locator("#step-key .badge")).to_have_text("done")
    expect(page.locator("#step-message .badge")).to_have_text("to do")
    assert send(http, live_server, number_id, key).status_code == 200
    page.goto("/dashboard")
    expect(page.locator("#first-steps")).to_have_count(0)
    expect(page.locator("#recent-messages")).to_contain_text(BODY)
    if size == "phone":
        # Stacked: each cell says what it is.
        cell = page.locator("#recent-messages tbody tr").first.locator('td[data-label="Message"]')
        label = cell.evaluate("c => getComputedStyle(c, '::before').content")
        assert label == '"Message"', label
        expect(page.locator("#recent-messages thead")).not_to_be_in_viewport()
    fits(page, width)

    for path in ("/numbers", "/billing"):  # (templates are not in the free plan: 403)
        page.goto(path)
        fits(page, width)
    watched.assert_clean()


# Counts what reaches document.execCommand('copy'): the way text is copied without navigator.clipboard.
NO_CLIPBOARD = """
Object.defineProperty(Navigator.prototype, 'clipboard', {get: function () { return undefined; }});
window.__execCopied = [];
var original = document.execCommand.bind(document);
document.execCommand = function (command) {
  if (command === 'copy') { window.__execCopied.push(document.activeElement.value); }
  return original.apply(document, arguments);
};
"""


@pytest.mark.parametrize("size", SIZES)
def test_copy_falls_back_without_the_clipboard_api(size, open_page):
    watched = open_page(**SIZES[size])
    page = watched.page
    page.add_init_script(NO_CLIPBOARD)

    sign_up(page)
    key = create_key(page)
    assert page.evaluate("navigator.clipboard") is None
    button = page.locator('button[data-copy="#new-key-secret"]')
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("window.__execCopied") == [key]
    # The off-screen buffer is gone again.
    expect(page.locator("textarea.copy-buffer")).to_have_count(0)
    watched.assert_clean()
