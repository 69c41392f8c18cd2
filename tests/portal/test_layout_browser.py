"""The portal's layout in a real browser, with a busy account, at 1280 px and at a phone's 390 px: no word of
ordinary text is broken in the middle (only long tokens such as keys, URLs and emails may break), nothing
scrolls sideways, and every action on the Team page is on the screen."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from saas.audit import services as audit
from saas.extensions import db
from saas.messaging.tenant_webhooks import endpoints
from saas.messaging.models import Message, WebhookDelivery
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.messaging.live import add_template
from tests.portal.team_helpers import PASSWORD, Team
from tests.portal.test_browser import browser, open_page  # noqa: F401  (fixtures)
from tests.portal.test_polish_browser import fits

from playwright.sync_api import expect  # noqa: E402

DOMAIN = "customer-operations.northwind-traders.example.com"
SIZES = {"desktop": {"viewport": {"width": 1280, "height": 800}},
         "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}}
PAGES = ("/dashboard", "/numbers", "/keys", "/templates", "/webhooks", "/billing", "/team", "/audit", "/account",
         "/account/two-factor", "/docs")

# Words of ordinary text (letters, perhaps an apostrophe and punctuation around) whose characters lie on more than
# one line: a word broken in the middle. Tokens with digits, dots, @, / or _ (keys, URLs, emails, ids) may break.
BROKEN_WORDS = r"""() => {
  const broken = [];
  const plain = /^[("“‘]?[A-Za-z]+(?:['’][A-Za-z]+)?[)"”’.,;:!?…]*$/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.textContent.matchAll(/\S+/g)) {
      if (!plain.test(match[0])) continue;
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (lines.size > 1) broken.push(match[0] + ' in <' + node.parentElement.tagName.toLowerCase() + '>');
    }
  }
  return broken;
}"""


@pytest.fixture
def busy_account(app):
    """A Pro tenant with a whole team, a live number, templates, messages, a webhook with failed deliveries
    and an audit log: the long words and crowded tables a real account has."""
    team = Team(app, plan="pro", domain=DOMAIN)
    with app.app_context():
        number = wa.add_live_number(team.id, display="+44 7700 900123")
        db.session.remove()
    for name in ("order_confirmation_with_tracking_link", "appointment_reminder", "welcome"):
        add_template(app, team.id, number.waba_id, name)
    with app.app_context():
        tenant = db.session.get(Tenant, team.id)
        now = utcnow()
        for n, body in enumerate(("Your order 40213 has shipped and arrives tomorrow between nine and eleven",
                                  "Thanks! Could the courier leave the parcel with the neighbour?",
                                  "Appointment reminder: physiotherapy, Wednesday afternoon",
                                  # A long token with no place to break: it may break anywhere, and must not widen
                                  # the table.
                                  "Track it: https://track.example.com/p/4f3a9c2e7b1d4e8fa0c6b5d2e9f1a7c3b8d6e4f2a1c9"
                                  "b7d5e3f1a8c6b4d2e0f9")):
            db.session.add(Message(tenant_id=team.id, phone_number_id=number.id, direction="in" if n == 1 else "out",
                                   wa_id="447700900456", type="text", body_summary=body, wa_message_id=wa.wamid(),
                                   status="delivered", created_at=now - timedelta(minutes=n), updated_at=now))
        endpoint, _ = endpoints.save_endpoint(
            tenant, "https://hooks.northwind-traders.example.com/whatsapp/relay/inbound-notifications")
        for n in range(3):
            db.session.add(WebhookDelivery(
                tenant_id=team.id, endpoint_id=endpoint.id, event_type="message", event_key=f"e{n}",
                sequence_key=f"s{n}", wa_message_id=wa.wamid(), payload={}, state="pending", attempts=2,
                next_attempt_at=now, last_status=503,
                last_error="The endpoint answered 503 Service Unavailable: upstream temporarily overloaded"))
        audit.record("cli", "plan.assigned", "Assigned the Professional plan by hand after a support conversation",
                     tenant_id=team.id)
        db.session.commit()
        db.session.remove()
    return team


def log_in(page, email):
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))


@pytest.mark.parametrize("size", SIZES)
def test_no_word_breaks_in_the_middle_and_nothing_scrolls_sideways(size, busy_account, open_page):
    options = SIZES[size]
    watched = open_page(**options)
    page = watched.page
    log_in(page, busy_account.email("owner"))
    for path in PAGES:
        answer = page.goto(path)
        assert answer.status == 200, path
        assert page.evaluate(BROKEN_WORDS) == [], f"{path} at {size}: words broken in the middle"
        fits(page, options["viewport"]["width"])
    watched.assert_clean()


@pytest.mark.parametrize("size", SIZES)
def test_every_team_action_is_on_the_screen(size, busy_account, open_page):
    options = SIZES[size]
    width = options["viewport"]["width"]
    watched = open_page(**options)
    page = watched.page
    log_in(page, busy_account.email("owner"))
    page.goto("/team")
    actions = page.locator("#member-list button, #member-list select, #member-list a, #invite-list button")
    # Every member but the owner has a role form and Remove; the owner has a role form and Leave; the invite, Revoke.
    members = page.locator("#member-list tbody tr").count()
    assert members == 7 and actions.count() == 3 * members + 1
    for n in range(actions.count()):
        action = actions.nth(n)
        # Not scrolled into view: that would scroll a table's wrapper sideways and hide the problem.
        box = action.bounding_box()
        label = action.get_attribute("aria-label") or action.inner_text()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, f"{label!r} is off the screen: {box}"
    fits(page, width)
    watched.assert_clean()
