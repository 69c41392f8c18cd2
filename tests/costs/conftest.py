"""The costs' test setting: a card and rules loaded, a tenant's live number, outbound messages whose sends
settle through the domain events, and WhatsApp's signed webhooks (statuses, account_update)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import select

from saas import events
from saas.costs import cards
from saas.costs.models import MessageCost
from saas.extensions import db
from saas.messaging.domain_events import send_settled
from saas.messaging.models import Message
from tests import whatsapp_payloads as wa
from tests.factories import make_tenant, settle
from tests.webhooks.test_whatsapp_inbound import SECRET

ARGENTINA = "5491123456789"
# Two cards: the second changes Argentina's rates from 2026-01-01. Rates as Meta's card writes them.
CARD_2025 = """# source: test card after Meta's of 2025-07-01
# effective: 2025-07-01
market,currency,marketing,utility,authentication,authentication-international,service,tier
Argentina,USD,0.0618,0.0289,0.0289,0.0500,,
Argentina,USD,,0.0200,0.0210,,,1000001:5000000
Other,USD,0.0604,0.0077,0.0077,,,
"""
CARD_2026 = """# source: test card of 2026-01-01
market,currency,marketing,utility,authentication,authentication-international,service,tier
Argentina,USD,0.0700,0.0300,0.0300,0.0550,,
Other,USD,0.0604,0.0077,0.0077,,,
"""
_wamids = itertools.count(1)


@pytest.fixture
def whatsapp(app):
    saved = app.config.get("WHATSAPP_APP_SECRET")
    app.config["WHATSAPP_APP_SECRET"] = SECRET
    yield app
    app.config["WHATSAPP_APP_SECRET"] = saved


@pytest.fixture
def priced(app):
    """The repository's charging rules of 2025-07-01 and the two test cards."""
    with app.app_context():
        with open("data/rates/rules-2025-07-01.csv", encoding="utf-8") as handle:
            cards.load_rules(db.session, handle.read())
        cards.load_card(db.session, CARD_2025)
        cards.load_card(db.session, CARD_2026, effective=datetime(2026, 1, 1).date())
        db.session.remove()
    return app


@dataclass
class Shop:
    tenant_id: int
    number: wa.Number


def make_shop(app, waba_id: str = "102290129340398") -> Shop:
    with app.app_context():
        tenant_id = make_tenant("starter").id
        db.session.remove()
        number = wa.add_live_number(tenant_id, waba_id=waba_id)
        db.session.remove()
    return Shop(tenant_id, number)


def send(app, shop: Shop, *, at: datetime, category: str, outside_window: bool = False, to: str = ARGENTINA,
         outcome: str = "accepted") -> tuple[int, str]:
    """An outbound message written as a send writes it, and its send.settled delivered (in the commit, as
    a job or the send service's thread delivers). Returns (message id, wamid)."""
    wamid = f"wamid.costs{next(_wamids):08d}{shop.tenant_id}"
    with app.app_context():
        row = Message(tenant_id=shop.tenant_id, phone_number_id=shop.number.id, direction="out", wa_id=to,
                      type="template" if category != "service" else "text", body_summary="hi", wa_message_id=wamid,
                      status="accepted", category=category, business_initiated=outside_window, created_at=at,
                      updated_at=at)
        db.session.add(row)
        db.session.flush()
        events.publish(db.session.connection(), [send_settled(shop.tenant_id, row.id, to, outcome,
                                                              wa_message_id=wamid, category=category)])
        events.commit(db.session)
        message_id = row.id
        db.session.remove()
    return message_id, wamid


def post_status(app, client, shop: Shop, wamid: str, *, pricing: dict | None, name: str = "sent",
                to: str = ARGENTINA):
    item = wa.status(wamid, name, recipient=to, charged=False)
    if pricing is not None:
        item["pricing"] = pricing
    payload = wa.notification(shop.number.waba_id, ("messages", wa.messages_value(shop.number, statuses=[item])))
    body, headers = wa.signed(payload, SECRET)
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(app)


def pricing(category: str, kind: str = "regular", billable: bool | None = None) -> dict:
    found = {"pricing_model": "PMP", "category": category, "type": kind}
    if billable is not None:
        found["billable"] = billable
    return found


def cost_of(app, tenant_id: int, message_id: int) -> MessageCost | None:
    with app.app_context():
        found = db.session.scalar(select(MessageCost).where(MessageCost.tenant_id == tenant_id,
                                                            MessageCost.message_id == message_id))
        if found is not None:
            db.session.expunge(found)
        db.session.remove()
    return found
