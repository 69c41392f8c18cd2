"""The portal in a real browser: headless Chromium, driven by Playwright.

The app fixture's Flask app is served over real HTTP on 127.0.0.1 (a free
port) in a background thread, so the browser goes through the same CSRF
tokens, session cookies, Content-Security-Policy and CSS a newcomer's browser
does. The API calls in between are real HTTP requests too (``requests``).

Chromium is the system one (Debian's package; CI exports CHROMIUM_PATH):
Playwright never downloads a browser here. Without one, these tests skip.
"""
from __future__ import annotations

import os
import re
import shutil

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.conftest import verification_link  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 375, "height": 812}
EMAIL = "newcomer@example.com"
PASSWORD = "correct horse battery"
BODY = "Hello from the browser test"

# Records what the page's Content-Security-Policy refused, console or not.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if not executable or not os.path.exists(executable):
        pytest.skip(f"no Chromium found (CHROMIUM_PATH={os.environ.get('CHROMIUM_PATH')!r}, no chromium on PATH): "
                    "install Debian's chromium package or set CHROMIUM_PATH; these tests never download a browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page plus every console error, uncaught exception and CSP violation it reported."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.add_init_script(CSP_WATCH)

    def _console(self, msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        self.errors.append(f"console error: {msg.text} ({url})")

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations || []")

    def assert_clean(self):
        assert self.csp_violations() == []
        assert self.errors == []


@pytest.fixture
def open_page(browser, live_server, mailbox):
    contexts = []

    def open_page(**options) -> Watched:
        context = browser.new_context(base_url=live_server, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return Watched(context.new_page())

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def http(live_server):
    import requests

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    yield session
    session.close()


def sign_up(page, company="Newcomer Ltd", email=EMAIL, password=PASSWORD, *, verify=True):
    """From the landing page through the signup form, the way a visitor does it; with ``verify``, then
    "check your email", and the verification link read from the SMTP sink, opened, and its button pressed (which logs this browser in)."""
    page.goto("/")
    # Pico styles the header's link as a button (role="button").
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/signup$"))
    page.get_by_label("Company name").fill(company)
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    if verify:
        expect(page).to_have_url(re.compile(r"/signup/check-email$"))
        expect(page.locator("#check-email")).to_contain_text(f"We sent a link to {email}")
        page.goto(verification_link(email))
        page.get_by_role("button", name="Verify my email address").click()


def create_key(page, name="curl") -> str:
    page.locator("header nav").get_by_role("link", name="API keys").click()
    expect(page).to_have_url(re.compile(r"/keys$"))
    page.get_by_label("Key name").fill(name)
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_contain_text(f"Your new key “{name}”")
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret and " " not in secret
    return secret


def send(http, live_server, number, key, body=BODY):
    return http.post(f"{live_server}/v23.0/{number}/messages", timeout=15,
                     headers={"Authorization": f"Bearer {key}"},
                     json={"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                           "text": {"body": body}})


def test_newcomer_signs_up_creates_a_key_and_sees_the_message_sent(app, open_page, live_server, http):
    watched = open_page()
    page = watched.page

    sign_up(page)  # the form, "check your email", the emailed link from the SMTP sink
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator(".flash.success")).to_contain_text("Your email address is verified")
    expect(page.locator(".flash.success")).to_contain_text("Your sandbox number is ready")
    expect(page.locator("#verify-email-banner")).to_have_count(0)
    expect(page.locator("#plan-name")).to_have_text("Free")
    expect(page.locator("#usage-used")).to_have_text("0")
    expect(page.locator("#no-messages")).to_be_visible()
    number_id = page.locator(".phone-number-id").first.inner_text().strip()
    assert re.fullmatch(r"\d+", number_id), number_id

    key = create_key(page)
    # The curl example next to the key is ready to paste: this server, this number, this key.
    example = page.locator("#new-key pre.example").inner_text()
    assert f"{live_server}/v23.0/{number_id}/messages" in example
    assert f"Bearer {key}" in example
    # The key is shown once: the list has only its prefix.
    expect(page.locator("#key-list")).to_contain_text("curl")
    assert key not in page.locator("#key-list").inner_text()

    response = send(http, live_server, number_id, key)
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["id"].startswith("wamid.")

    # The sandbox's receipts arrive a moment after the answer, as a handset's would.
    assert app.extensions["background"].join()
    page.goto("/dashboard")
    row = page.locator("#recent-messages tbody tr").filter(has_text=BODY)
    expect(row).to_have_count(1)
    expect(row.locator('td[data-label="To / from"]')).to_contain_text("15551234567")
    expect(row.locator('td[data-label="Status"]')).to_contain_text("read")
    expect(page.locator("#usage-used")).to_have_text("1")
    expect(page.locator("#usage-count")).to_have_text("1")
    page.screenshot(path="/tmp/dashboard.png", full_page=True)

    usage = http.get(f"{live_server}/api/v1/usage", timeout=15, headers={"Authorization": f"Bearer {key}"})
    assert usage.status_code == 200, usage.text
    assert usage.json()["used"] == 1
    assert usage.json()["plan"]["name"] == "Free"

    watched.assert_clean()


def test_short_password_shows_the_error_next_to_the_field(open_page):
    watched = open_page()
    page = watched.page

    sign_up(page, password="short", verify=False)

    expect(page).to_have_url(re.compile(r"/signup$"))
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    password = page.get_by_label("Password")
    error = page.locator("#password-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("8")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_attribute("aria-describedby", "password-error")
    # Right under the password input, not somewhere else on the page.
    field, message = password.bounding_box(), error.bounding_box()
    assert 0 <= message["y"] - (field["y"] + field["height"]) < 40, (field, message)
    assert abs(message["x"] - field["x"]) < 40, (field, message)
    # Only the password is wrong; what was typed elsewhere is kept.
    expect(page.locator(".field-error")).to_have_count(1)
    expect(page.get_by_label("Company name")).to_have_value("Newcomer Ltd")
    expect(page.get_by_label("Work email")).to_have_value(EMAIL)
    expect(page.locator("#account-status")).to_have_count(0)

    # The browser's console sees the 400 the form answers with; nothing else may show up.
    assert all("status of 400" in line for line in watched.errors), watched.errors
    assert watched.csp_violations() == []


def test_pages_fit_a_phone_without_console_errors(open_page, live_server, http):
    watched = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page = watched.page

    def fits(path_pattern):
        expect(page).to_have_url(re.compile(path_pattern))
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"
        watched.assert_clean()

    page.goto("/")
    fits(r"/$")
    page.goto("/login")
    fits(r"/login$")
    sign_up(page)
    fits(r"/dashboard$")
    number_id = page.locator(".phone-number-id").first.inner_text().strip()
    key = create_key(page)  # the longest page: secret plus curl example
    fits(r"/keys$")
    assert send(http, live_server, number_id, key).status_code == 200
    page.goto("/dashboard")
    expect(page.locator("#recent-messages")).to_contain_text(BODY)
    fits(r"/dashboard$")
    page.goto("/billing")
    fits(r"/billing$")
    page.goto("/numbers")
    fits(r"/numbers$")


def test_unverified_owner_sees_the_banner_and_resending_is_throttled(open_page):
    watched = open_page()
    page = watched.page
    sign_up(page, verify=False)
    expect(page).to_have_url(re.compile(r"/signup/check-email$"))
    expect(page.locator("#check-email")).to_contain_text(EMAIL)

    page.goto("/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    banner = page.locator("#verify-email-banner")
    expect(banner).to_contain_text(f"Verify {EMAIL}")
    banner.get_by_role("button", name="Resend verification email").click()
    expect(page.locator(".flash.error")).to_contain_text("less than a minute ago")

    page.goto(verification_link(EMAIL))
    expect(page.locator("#verify-email")).to_contain_text(EMAIL)
    page.get_by_role("button", name="Verify my email address").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator("#verify-email-banner")).to_have_count(0)
    watched.assert_clean()
