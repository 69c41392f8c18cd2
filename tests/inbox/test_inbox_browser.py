"""The inbox in Chromium, as an agent uses it on a phone: answer an inbound chat, watch its ticks move
live (Server-Sent Events, no reload), and past the 24-hour window send a template instead."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402
from sqlalchemy import update  # noqa: E402

from saas.extensions import db  # noqa: E402
from saas.inbox.live import LiveUpdates  # noqa: E402
from saas.inbox.models import Agent  # noqa: E402
from saas.messaging.models import ServiceWindow  # noqa: E402
from saas.timeutil import utcnow  # noqa: E402
from tests import whatsapp_payloads as wa  # noqa: E402
from tests.inbox.helpers import CUSTOMER, add_member, make_shop, post_inbound, post_statuses, text  # noqa: E402
from tests.messaging.live import add_template  # noqa: E402
from tests.portal.test_browser import PHONE, browser, open_page  # noqa: E402,F401

AGENT = "agent@shop.example.com"
PASSWORD = "correct horse"


@pytest.fixture
def streams(app):
    """Streams that live long enough to watch (the test app's default ends them at once)."""
    saved = app.extensions.pop("inbox_live", None)
    app.extensions["inbox_live"] = LiveUpdates(poll_seconds=0.1, heartbeat_seconds=1.0, stream_seconds=20.0)
    yield
    app.extensions.pop("inbox_live", None)
    if saved is not None:
        app.extensions["inbox_live"] = saved


def test_an_agent_answers_sees_it_delivered_live_and_sends_a_template_past_the_window(
        app, client, whatsapp, streams, open_page):
    shop = make_shop(app, whatsapp)
    agent_id = add_member(app, shop.tenant_id, AGENT, "agent", PASSWORD)
    with app.app_context():
        db.session.add(Agent(tenant_id=shop.tenant_id, user_id=agent_id, available=True, max_open=5))
        db.session.commit()
        db.session.remove()
    whatsapp.add_template(shop.waba_id, "order_update")
    add_template(app, shop.tenant_id, shop.waba_id, "order_update")
    post_inbound(app, client, shop, text("Where is my order?"))

    watched = open_page(viewport=PHONE)
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email").fill(AGENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/inbox$"))
    row = page.locator(".inbox-row", has_text="Sheena Nelson")
    expect(row).to_contain_text("Where is my order?")
    expect(row.locator(".window-left")).to_contain_text("left")
    row.get_by_role("link").click()

    page.locator("#composer-text").fill("It ships today!")
    page.get_by_role("button", name="Send").click()
    mine = page.locator(".entry-out", has_text="It ships today!")
    expect(mine.locator(".ticks")).to_have_attribute("title", "accepted")
    expect(page.locator("body")).to_have_attribute("data-inbox-live", "on")
    wamid = whatsapp.sends()[-1]
    sent_id = _wamid_of(app, shop.tenant_id, "It ships today!")
    post_statuses(app, client, shop, wa.status(sent_id, "delivered", recipient=CUSTOMER))
    # No reload: the stream tells the page, which fetches the thread again.
    expect(mine.locator(".ticks")).to_have_attribute("title", "delivered")
    post_inbound(app, client, shop, text("Thanks!"))
    expect(page.locator(".entry-in", has_text="Thanks!")).to_be_visible()
    assert wamid["text"]["body"] == "It ships today!"

    with app.app_context():
        db.session.execute(update(ServiceWindow).where(ServiceWindow.tenant_id == shop.tenant_id)
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        db.session.remove()
    page.reload()
    expect(page.locator("#window-closed-note")).to_be_visible()
    expect(page.locator("#composer-text")).to_have_count(0)
    page.locator("#template-picker").select_option("order_update|en_US")
    page.locator("#template-variables").fill("Sheena")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".entry-out", has_text="template order_update: Sheena")).to_be_visible()
    assert whatsapp.sends()[-1]["type"] == "template"
    watched.assert_clean()


def _wamid_of(app, tenant_id: int, body: str) -> str:
    from sqlalchemy import select

    from saas.inbox.models import Entry

    with app.app_context():
        found = db.session.scalar(select(Entry.wa_message_id).where(Entry.tenant_id == tenant_id, Entry.text == body))
        db.session.remove()
    return found
