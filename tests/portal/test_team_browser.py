"""The team in a real browser: the owner invites a developer, who opens the link in another browser
(context: no shared cookies), sets a password, joins, and sees a dashboard without billing or team links."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.portal.test_browser import browser, open_page, sign_up  # noqa: E402,F401

OWNER = "owner@browserteam.example.com"
DEVELOPER = "dev@browserteam.example.com"


def test_owner_invites_a_developer_who_joins_in_another_browser(open_page):
    owner = open_page()
    sign_up(owner.page, company="Browser Team Ltd", email=OWNER)
    expect(owner.page).to_have_url(re.compile(r"/dashboard$"))
    owner.page.get_by_role("link", name="Team").click()
    expect(owner.page).to_have_url(re.compile(r"/team$"))
    owner.page.locator("#invite-form").get_by_label("Email").fill(DEVELOPER)
    owner.page.locator("#invite-form").get_by_label("Role").select_option("developer")
    owner.page.get_by_role("button", name="Invite").click()
    link = owner.page.locator("#invite-url").inner_text().strip()
    assert re.search(r"/invite/[A-Za-z0-9_-]{30,}$", link)
    expect(owner.page.locator("#invite-list")).to_contain_text(DEVELOPER)

    developer = open_page()  # another context: none of the owner's cookies
    developer.page.goto(link)
    expect(developer.page.locator("h1")).to_contain_text("Join Browser Team Ltd")
    developer.page.get_by_label("Choose a password").fill("developer horse battery")
    developer.page.get_by_role("button", name="Create my login and join").click()
    expect(developer.page).to_have_url(re.compile(r"/dashboard$"))
    nav = developer.page.locator("header nav")
    expect(nav.get_by_role("link", name="API keys")).to_be_visible()
    expect(nav.get_by_role("link", name="Billing")).to_have_count(0)
    expect(nav.get_by_role("link", name="Team")).to_have_count(0)
    expect(developer.page.get_by_role("link", name="Change plan")).to_have_count(0)
    developer.assert_clean()

    owner.page.goto("/team")
    expect(owner.page.locator("#member-list")).to_contain_text(DEVELOPER)
    expect(owner.page.locator("#invite-list")).not_to_contain_text(DEVELOPER)
    owner.assert_clean()
