"""Broadcast test data: a Pro tenant with a live number in the loopback Graph API, an approved template
with variables, contacts with consent, and the engine run in the test's own process."""
from __future__ import annotations

import itertools
from datetime import timedelta

from saas.billing import entitlements
from saas.broadcasts import services
from saas.broadcasts.pacing import Pacing
from saas.broadcasts.runner import Runner
from saas.contacts.models import OPTED_IN, OPTED_OUT, Consent, Contact, ContactLabel
from saas.extensions import db
from saas.messaging.models import Template
from saas.messaging.outbound import send_service
from saas.tenants.services import tenant_snapshot
from tests.factories import make_tenant
from tests.messaging.live import live_number

_shops = itertools.count(1)
GREETING = [{"type": "BODY", "text": "Hello {{1}}, your code is {{2}}"}]


class Shop:
    """A tenant, its live number (Meta's id, our pk, WABA) and what it has made."""

    def __init__(self, app, graph, plan: str = "pro", *, tier: str = "TIER_100K"):
        self.app, self.graph = app, graph
        self.email = f"owner{next(_shops)}@shop.example.com"
        with app.app_context():
            tenant = make_tenant(plan, email=self.email)
            self.tenant_id = tenant.id
            db.session.remove()
        self.phone_number_id, self.number_pk, self.waba_id, _ = live_number(app, graph, self.tenant_id, tier=tier)

    def template(self, name="promo", category="MARKETING", components=GREETING, language="en_US"):
        self.graph.add_template(self.waba_id, name, language=language, category=category, components=components)
        with self.app.app_context():
            db.session.add(Template(tenant_id=self.tenant_id, waba_id=self.waba_id, name=name, language=language,
                                    category=category, status="APPROVED", meta_id=str(len(name) * 7919),
                                    components=components))
            db.session.commit()
            db.session.remove()

    def contacts(self, count: int, *, start: int = 0, label: str | None = "vip", consent: str | None = OPTED_IN,
                 name=lambda i: f"Customer {i}", attributes=lambda i: {"code": f"C{i}"},
                 prefix: str = "90532", digits: int = 7) -> list[int]:
        """``count`` Turkish contacts (valid numbers) with a label and consent; their ids."""
        with self.app.app_context():
            rows = [Contact(tenant_id=self.tenant_id, wa_id=f"{prefix}{start + i:0{digits}d}", name=name(start + i),
                            country="TR", attributes=attributes(start + i), source="api") for i in range(count)]
            db.session.add_all(rows)
            db.session.flush()
            for row in rows:
                if label:
                    db.session.add(ContactLabel(tenant_id=self.tenant_id, contact_id=row.id, label=label))
                if consent:
                    db.session.add(Consent(tenant_id=self.tenant_id, contact_id=row.id,
                                           phone_number_id=self.number_pk, state=consent, source="api"))
            db.session.commit()
            ids = [row.id for row in rows]
            db.session.remove()
        return ids

    def opt_out(self, contact_id: int) -> None:
        with self.app.app_context():
            consent = db.session.query(Consent).filter_by(contact_id=contact_id).one()
            consent.state = OPTED_OUT
            db.session.commit()
            db.session.remove()

    def create(self, *, inline_max: int = 10**9, **data) -> int:
        """A broadcast made as the API makes it; its check runs here unless the audience is past ``inline_max``
        (then by a job, in the app's background thread)."""
        data = {"name": "Spring sale", "phone_number_id": self.phone_number_id,
                "template": {"name": "promo", "language": "en_US"},
                "variables": {"body.1": {"field": "name", "default": "there"}, "body.2": {"field": "attr:code"}},
                "audience": {"labels": ["vip"]}, **data}
        with self.app.app_context():
            tenant = tenant_snapshot(self.tenant_id)
            broadcast = services.create(tenant, entitlements.for_tenant(tenant), data, inline_max=inline_max)
            broadcast_id = broadcast.id
            db.session.remove()
        return broadcast_id

    def call(self, verb: str, broadcast_id: int):
        with self.app.app_context():
            tenant = tenant_snapshot(self.tenant_id)
            getattr(services, verb)(tenant, entitlements.for_tenant(tenant), broadcast_id)
            db.session.remove()

    def get(self, broadcast_id: int) -> dict:
        with self.app.app_context():
            tenant = tenant_snapshot(self.tenant_id)
            broadcast = services.get(tenant, broadcast_id)
            found = {"status": broadcast.status, "check": broadcast.check_result,
                     "counts": services.counts(tenant, [broadcast_id])[broadcast_id]}
            db.session.remove()
        return found

    def recipients(self, broadcast_id: int) -> list:
        with self.app.app_context():
            tenant = tenant_snapshot(self.tenant_id)
            rows = services.recipients(tenant, broadcast_id, limit=100_000)
            db.session.expunge_all()
            db.session.remove()
        return rows


def run(app, *, batch: int = 100, pacing: bool = False, recover_after=timedelta(minutes=10), **kwargs) -> int:
    """The engine in this process until nothing is left to send now."""
    with app.app_context():
        runner = Runner(db.session, send_service(app), batch=batch, pacing=Pacing(enabled=pacing),
                        recover_after=recover_after, **kwargs)
        claimed = runner.run(until_idle=True)
        db.session.remove()
    return claimed


def sends_to(graph) -> list[str]:
    """The recipient of every send WhatsApp received whole, in order (a request cut off by a killed worker
    is no send)."""
    return [body["to"] for body in graph.sends() if isinstance(body, dict)]
