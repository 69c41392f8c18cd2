"""Upgrading in a real browser: headless Chromium from the billing page through Checkout and back.

Stripe is the loopback fake; its Checkout URL answers a bare page, where the
test plays the customer (``complete_checkout``) and Stripe delivering its
events, signed, to POST /webhooks/stripe over HTTP; the dashboard then shows the
new plan, and the browser follows the success URL back as Stripe would send it.
"""
from __future__ import annotations

import re

import pytest
import requests

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.billing.test_checkout import sync  # noqa: E402
from tests.conftest import verification_link  # noqa: E402
from tests.portal.test_browser import CSP_WATCH, PHONE, browser  # noqa: E402,F401  (fixtures)


@pytest.fixture
def page(browser, live_server, mailbox):
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(f"console error: {msg.text}"))
    page.on("pageerror", lambda exc: page.errors.append(f"page error: {exc}"))
    page.add_init_script(CSP_WATCH)
    yield page
    context.close()


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def test_free_tenant_upgrades_to_pro_through_checkout(app, stripe, page, live_server):
    with app.app_context():
        sync(stripe, "starter", "pro", "enterprise")

    page.goto("/signup")
    page.get_by_label("Company name").fill("Upgrader Ltd")
    page.get_by_label("Work email").fill("upgrader@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/signup/check-email$"))
    page.goto(verification_link("upgrader@example.com"))
    page.get_by_role("button", name="Verify my email address").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator("#plan-name")).to_have_text("Free")

    page.locator("header nav").get_by_role("link", name="Billing").click()
    expect(page).to_have_url(re.compile(r"/billing$"))
    expect(page.locator("#plan-free")).to_have_class("current")
    assert csp_violations(page) == []
    page.locator("#plan-pro").get_by_role("button", name="Upgrade to Pro").click()

    # Stripe's Checkout page (the fake's), reached through our 303 after the form's POST.
    expect(page).to_have_url(re.compile(re.escape(stripe.url) + r"/checkout/cs_\w+$"))
    expect(page.locator("#fake-stripe-checkout")).to_be_visible()
    session_id = page.url.rsplit("/", 1)[-1]
    session = stripe.get(session_id, "checkout.session")
    assert session["success_url"] == f"{live_server}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"

    # The customer pays; Stripe delivers its events to our webhook, signed.
    for event in stripe.complete_checkout(session_id):
        body, headers = stripe.signed(event)
        delivered = requests.post(f"{live_server}/webhooks/stripe", data=body, headers=headers, timeout=10)
        assert delivered.status_code == 200, delivered.text
    page.goto("/dashboard")
    expect(page.locator("#plan-name")).to_have_text("Pro")
    expect(page.locator("#usage-card")).to_contain_text("of 5,000 conversations")
    page.goto(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))

    expect(page.locator("#checkout-result")).to_contain_text("You are on the Pro plan")
    page.get_by_role("button", name="Go to the dashboard").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator("#plan-name")).to_have_text("Pro")
    expect(page.locator("#usage-card")).to_contain_text("of 5,000 conversations")
    page.screenshot(path="/tmp/billing-upgraded.png", full_page=True)
    page.goto("/billing")
    expect(page.locator("#plan-pro")).to_have_class("current")
    expect(page.locator("#invoices")).to_contain_text("$99.00")
    page.screenshot(path="/tmp/billing-page.png", full_page=True)
    assert csp_violations(page) == []
    assert page.errors == []




def test_subscriber_switches_plan_after_the_preview_on_a_phone(app, stripe, browser, live_server, mailbox):
    with app.app_context():
        sync(stripe, "starter", "pro", "enterprise")
    context = browser.new_context(base_url=live_server, viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.add_init_script(CSP_WATCH)
    errors = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))

    def fits():
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"

    try:
        page.goto("/signup")
        page.get_by_label("Company name").fill("Switcher Ltd")
        page.get_by_label("Work email").fill("switcher@example.com")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(re.compile(r"/signup/check-email$"))
        page.goto(verification_link("switcher@example.com"))
        page.get_by_role("button", name="Verify my email address").click()
        expect(page).to_have_url(re.compile(r"/dashboard$"))
        page.goto("/billing")
        page.locator("#plan-pro").get_by_role("button", name="Upgrade to Pro").click()
        expect(page).to_have_url(re.compile(r"/checkout/cs_\w+$"))
        session_id = page.url.rsplit("/", 1)[-1]
        stripe.complete_checkout(session_id)
        # No webhook this time: the success page applies the subscription itself.
        page.goto(f"/billing/success?session_id={session_id}")
        expect(page.locator("#checkout-result")).to_contain_text("You are on the Pro plan")
        fits()

        page.goto("/billing")
        fits()
        page.locator("#plan-enterprise").get_by_role("button", name="Upgrade to Enterprise").click()
        expect(page).to_have_url(re.compile(r"/billing/change/enterprise$"))
        expect(page.locator("#preview-lines")).to_contain_text("Unused time on the current plan")
        expect(page.locator("#proration-total")).to_have_text("$200.00")
        fits()
        page.get_by_role("button", name="Confirm: switch to Enterprise").click()

        expect(page).to_have_url(re.compile(r"/billing$"))
        expect(page.locator(".flash.success")).to_contain_text("You are now on the Enterprise plan.")
        expect(page.locator("#plan-name")).to_have_text("Enterprise")
        expect(page.locator("#plan-enterprise")).to_have_class("current")
        fits()
        assert page.evaluate("window.__cspViolations || []") == []
        assert errors == []
    finally:
        context.close()
