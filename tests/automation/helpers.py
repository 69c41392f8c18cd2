"""Automation's test setting: a Pro shop (automation and the inbox) with a live number in the loopback
Graph, rules made through the API, and what left for WhatsApp."""
from __future__ import annotations

from sqlalchemy import select

from saas.automation.models import Run
from saas.extensions import db
from saas.inbox.models import Entry, Thread
from tests.inbox.helpers import Shop, make_shop


def pro_shop(app, graph, plan: str = "pro") -> Shop:
    return make_shop(app, graph, plan)


def add_rule(client, shop: Shop, **fields) -> dict:
    body = {"name": "rule", "enabled": True, "trigger": "keyword", "match": "contains", "pattern": "price",
            "actions": [{"type": "reply", "message": {"type": "text", "text": {"body": "Prices: example.com"}}}],
            **fields}
    response = client.post("/api/v1/automation/rules", json=body, headers=shop.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def sent_to(graph, wa_id: str) -> list[dict]:
    """The messages that reached the loopback Graph for ``wa_id``."""
    return [body for body in graph.sends() if isinstance(body, dict) and body.get("to") == wa_id]


def runs_of(app, tenant_id: int) -> list[Run]:
    with app.app_context():
        rows = list(db.session.scalars(select(Run).where(Run.tenant_id == tenant_id).order_by(Run.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def thread_entries(app, tenant_id: int) -> list[Entry]:
    with app.app_context():
        thread_ids = list(db.session.scalars(select(Thread.id).where(Thread.tenant_id == tenant_id)))
        rows = list(db.session.scalars(select(Entry).where(Entry.thread_id.in_(thread_ids))
                                       .order_by(Entry.at, Entry.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows
