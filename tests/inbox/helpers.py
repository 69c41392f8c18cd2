"""The inbox's test setting: a tenant on a plan with the inbox, a live number in the loopback Graph, signed
inbound webhooks, and a logged-in browserless client per member."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from saas.extensions import db
from saas.inbox.models import Entry, Thread
from saas.messaging.models import PhoneNumber
from tests import whatsapp_payloads as wa
from tests.conftest import csrf_token
from tests.factories import make_key, make_tenant, settle
from tests.messaging.live import live_number

SECRET = "test-app-secret"
CUSTOMER = "16505551234"


@dataclass
class Shop:
    tenant_id: int
    owner_email: str
    key: str
    number: wa.Number
    waba_id: str

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.key}"}


def make_shop(app, graph, plan: str = "starter") -> Shop:
    with app.app_context():
        tenant = make_tenant(plan)
        tenant_id, email, key = tenant.id, tenant.users[0].email, make_key(tenant)
        db.session.remove()
    phone_number_id, pk, waba_id, _ = live_number(app, graph, tenant_id)
    with app.app_context():
        number = wa.Number(db.session.get(PhoneNumber, pk))
        db.session.remove()
    return Shop(tenant_id, email, key, number, waba_id)


def post_inbound(app, client, shop: Shop, *messages, name="Sheena Nelson", sender=CUSTOMER):
    """WhatsApp's webhook with ``messages`` from ``sender``, signed; waits until it is applied."""
    payload = wa.notification(shop.waba_id, ("messages", wa.messages_value(
        shop.number, messages=list(messages), contacts=[wa.contact(sender, name=name)])))
    body, headers = wa.signed(payload, SECRET)
    response = client.post("/webhooks/whatsapp", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    settle(app)


def post_statuses(app, client, shop: Shop, *statuses):
    payload = wa.notification(shop.waba_id, ("messages", wa.messages_value(shop.number, statuses=list(statuses))))
    body, headers = wa.signed(payload, SECRET)
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(app)


def text(body: str, *, offset: int = 0, sender=CUSTOMER, message_id=None) -> dict:
    return wa.inbound("text", {"body": body}, sender=sender, timestamp=str(int(time.time()) + offset),
                      message_id=message_id)


def threads_of(app, tenant_id: int) -> list[Thread]:
    with app.app_context():
        rows = list(db.session.scalars(select(Thread).where(Thread.tenant_id == tenant_id).order_by(Thread.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def entries_of(app, thread_id: int) -> list[Entry]:
    with app.app_context():
        rows = list(db.session.scalars(select(Entry).where(Entry.thread_id == thread_id)
                                       .order_by(Entry.at, Entry.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def login(client, email: str, password: str = "correct horse"):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    return client


def add_member(app, tenant_id: int, email: str, role: str, password: str = "correct horse") -> int:
    """A member of the tenant with ``role`` (as an accepted invitation makes one). Commits."""
    from werkzeug.security import generate_password_hash

    from saas.tenants.models import User
    from saas.timeutil import utcnow

    with app.app_context():
        user = User(email=email, password_hash=generate_password_hash(password), role=role, tenant_id=tenant_id,
                    email_verified_at=utcnow())
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return user_id
