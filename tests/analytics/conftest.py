"""The analytics' test setting: the costs' (two rate cards, a tenant's live number, signed status webhooks),
outbound messages written as a send writes them with their send.settled delivered, and the roll-ups read
back as plain tuples."""
from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import select

from saas import events
from saas.analytics.models import CountedMessage, DailyFailures, DailyFigures
from saas.extensions import db
from saas.messaging.domain_events import send_settled
from saas.messaging.models import Message
from tests import whatsapp_payloads as wa
from tests.costs.conftest import ARGENTINA, SECRET, Shop, make_shop, priced, whatsapp  # noqa: F401  (fixtures)
from tests.factories import settle

_wamids = itertools.count(1)


def send(app, shop: Shop, *, at: datetime, category: str = "marketing", to: str = ARGENTINA,
         opened: bool = False, refused_code: int | None = None) -> tuple[int, str | None]:
    """An outbound message and its send.settled: accepted (with a WhatsApp id), or refused by WhatsApp with
    ``refused_code`` (failed, no id). Returns (message id, wamid)."""
    wamid = None if refused_code else f"wamid.analytics{next(_wamids):08d}{shop.tenant_id}"
    with app.app_context():
        row = Message(tenant_id=shop.tenant_id, phone_number_id=shop.number.id, direction="out", wa_id=to,
                      type="template", body_summary="hi", wa_message_id=wamid,
                      status="failed" if refused_code else "accepted", error_code=refused_code,
                      category=category, business_initiated=True, opened_conversation=opened,
                      created_at=at, updated_at=at)
        db.session.add(row)
        db.session.flush()
        outcome = "failed" if refused_code else "accepted"
        events.publish(db.session.connection(), [send_settled(shop.tenant_id, row.id, to, outcome,
                                                              wa_message_id=wamid, error_code=refused_code,
                                                              category=category)])
        events.commit(db.session)
        message_id = row.id
        db.session.remove()
    return message_id, wamid


def statuses(app, client, shop: Shop, items: list[dict]) -> None:
    """One signed notification carrying ``items`` (status objects), applied and its events delivered."""
    payload = wa.notification(shop.number.waba_id, ("messages", wa.messages_value(shop.number, statuses=items)))
    body, headers = wa.signed(payload, SECRET)
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(app)


def status(wamid: str, name: str, *, pricing: dict | None = None, code: int | None = None) -> dict:
    item = wa.failed(wamid, code=code, recipient=ARGENTINA) if name == "failed" else wa.status(
        wamid, name, recipient=ARGENTINA, charged=False)
    if pricing is not None:
        item["pricing"] = pricing
    return item


def figures(app, tenant_id: int | None = None) -> list[tuple]:
    """Every roll-up row (of one tenant), zero rows left out, as sorted tuples."""
    with app.app_context():
        query = select(DailyFigures)
        if tenant_id is not None:
            query = query.where(DailyFigures.tenant_id == tenant_id)
        rows = sorted((r.tenant_id, r.day, r.phone_number_id, r.category, r.market, r.currency, r.sent, r.delivered,
                       r.read, r.failed, r.conversations, r.confirmed, r.estimated_micros, r.confirmed_micros,
                       r.cost_micros) for r in db.session.scalars(query))
        db.session.remove()
    return [row for row in rows if any(row[6:])]


def failures(app, tenant_id: int | None = None) -> list[tuple]:
    with app.app_context():
        query = select(DailyFailures)
        if tenant_id is not None:
            query = query.where(DailyFailures.tenant_id == tenant_id)
        rows = sorted((r.tenant_id, r.day, r.phone_number_id, r.error_code, r.failed)
                      for r in db.session.scalars(query) if r.failed)
        db.session.remove()
    return rows


def counted(app) -> int:
    with app.app_context():
        n = len(db.session.scalars(select(CountedMessage)).all())
        db.session.remove()
    return n
