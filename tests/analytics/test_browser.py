"""The analytics page in a real browser (headless Chromium through Playwright, as tests/portal/test_browser.py),
under the Content-Security-Policy: the vendored uPlot draws the messages-per-day chart onto its canvas."""
from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from playwright.sync_api import expect  # noqa: E402

from saas.extensions import db  # noqa: E402
from saas.tenants.models import User  # noqa: E402
from saas.timeutil import utcnow  # noqa: E402
from tests.analytics.conftest import make_shop, send, status, statuses  # noqa: E402
from tests.portal.test_browser import browser, open_page  # noqa: E402,F401

PASSWORD = "correct horse"
# Pixels of the plot's canvas that are not transparent: axes, grid and the four series' lines.
PAINTED = """() => {
  const canvas = document.querySelector('#analytics-chart canvas');
  if (!canvas) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
  return painted;
}"""


def test_the_analytics_page_draws_its_chart(priced, whatsapp, client, open_page):  # noqa: F811
    shop = make_shop(priced)
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    sent = [send(priced, shop, at=today - timedelta(days=n % 5, hours=-1))[1] for n in range(8)]
    statuses(priced, client, shop, [status(wamid, "delivered") for wamid in sent[:5]] + [status(sent[0], "read")])
    with priced.app_context():
        email = db.session.query(User.email).filter(User.tenant_id == shop.tenant_id).scalar()
        db.session.remove()
    watched = open_page(viewport={"width": 1280, "height": 900})
    page = watched.page
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("header nav").get_by_role("link", name="Analytics").click()
    expect(page.locator("#total-sent")).to_have_text("8")
    expect(page.locator("#analytics-chart")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#analytics-chart .u-legend")).to_contain_text("Delivered")
    assert page.evaluate(PAINTED) > 500
    watched.assert_clean()
