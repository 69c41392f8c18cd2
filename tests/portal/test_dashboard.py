"""The dashboard's recent messages say which of the tenant's numbers sent (or received) each one."""
from __future__ import annotations

import html
import re

from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Message, PhoneNumber
from saas.timeutil import utcnow
from tests import whatsapp_payloads as wa
from tests.factories import make_tenant
from tests.portal.team_helpers import login

EMAIL = "owner@shop.example.com"


def message(tenant_id, number_id, body, direction="out"):
    now = utcnow()
    db.session.add(Message(tenant_id=tenant_id, phone_number_id=number_id, direction=direction, wa_id="16505551234",
                           type="text", body_summary=body, wa_message_id=wa.wamid(), status="delivered",
                           created_at=now, updated_at=now))
    db.session.commit()


def rows(page: str) -> dict[str, str]:
    """Each recent message's summary -> the text of its "Our number" cell."""
    table = re.search(r'<table id="recent-messages">(.*?)</table>', page, re.S).group(1)
    result = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        cells = {label: " ".join(re.sub(r"<[^>]+>", " ", html.unescape(text)).split())
                 for label, text in re.findall(r'<td data-label="([^"]+)"[^>]*>(.*?)</td>', row, re.S)}
        result[cells["Message"]] = cells["Our number"]
    return result


def test_each_recent_message_shows_the_number_it_went_through(app):
    with app.app_context():
        tenant = make_tenant("pro", email=EMAIL)
        sandbox = db.session.scalar(select(PhoneNumber).where(PhoneNumber.tenant_id == tenant.id))
        sandbox_id, sandbox_display = sandbox.phone_number_id, sandbox.display_number
        shop = wa.add_live_number(tenant.id, display="+1 555-0100-111")
        support = wa.add_live_number(tenant.id, display="+1 555-0100-222")
        message(tenant.id, sandbox.id, "tried the sandbox")
        message(tenant.id, shop.id, "your order shipped")
        message(tenant.id, support.id, "where is my order?", direction="in")
        # A number disconnected later keeps its history on the dashboard.
        db.session.get(PhoneNumber, support.id).disconnected_at = utcnow()
        db.session.commit()
        db.session.remove()

    page = login(app, EMAIL).get("/dashboard").get_data(as_text=True)

    assert rows(page) == {
        "tried the sandbox": f"{sandbox_display} {sandbox_id}",
        "your order shipped": f"+1 555-0100-111 {shop.phone_number_id}",
        "where is my order?": f"+1 555-0100-222 {support.phone_number_id}",
    }
