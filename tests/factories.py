"""Test data built through the real services; every factory starts from a tenant."""
from __future__ import annotations

import itertools

from sqlalchemy import func, select

from saas.billing.catalog import plan_by_code
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.onboarding import services as onboarding
from saas.tenants import services as accounts

_seq = itertools.count(1)


def make_tenant(plan: str = "free", *, name: str | None = None, email: str | None = None,
                password: str = "correct horse", verified: bool = True):
    n = next(_seq)
    user = onboarding.sign_up(name or f"Tenant {n}", email or f"owner{n}@tenant{n}.example.com",
                              password, plan_code=plan, verified=verified)
    return user.tenant


def make_key(tenant, name: str = "test") -> str:
    return accounts.create_api_key(tenant, name).secret


def sandbox_number(tenant) -> str:
    return numbers_for(tenant)[0].phone_number_id


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def row_counts(app) -> dict:
    """Rows per account table: proof that a refused request wrote nothing."""
    from saas.billing.models import Subscription
    from saas.messaging.models import PhoneNumber
    from saas.tenants.models import ApiKey, Tenant, User

    with app.app_context():
        result = {m.__tablename__: count(m) for m in (Tenant, User, Subscription, PhoneNumber, ApiKey)}
        db.session.remove()
    return result


def set_quota(code: str, included: int) -> None:
    plan = plan_by_code(code)
    plan.included_conversations = included
    db.session.commit()


class Sender:
    """A tenant's API client: its key, its sandbox number, and the Flask test client."""

    def __init__(self, client, tenant):
        self.client = client
        self.tenant_id = tenant.id
        self.key = make_key(tenant)
        self.number = sandbox_number(tenant)
        self.tenant_slug = tenant.slug

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.key}"}

    def send(self, to="15551234567", body="hello", *, number=None, idempotency_key=None, payload=None,
             version="v23.0"):
        headers = dict(self.headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        payload = payload if payload is not None else {
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}
        return self.client.post(f"/{version}/{number or self.number}/messages", json=payload, headers=headers)

    def get(self, path, **kwargs):
        return self.client.get(path, headers=self.headers, **kwargs)


def sender(client, plan: str = "free") -> Sender:
    """A new tenant's API client. Built in an app context of its own that is
    gone before any request, as in production, where each request has its own."""
    with client.application.app_context():
        result = Sender(client, make_tenant(plan))
        db.session.remove()
    return result


def settle(app) -> None:
    """Wait for the follow-ups queued so far (the sandbox's status walks) to run."""
    assert app.extensions["background"].join(), "background jobs did not finish"


def usage_values(app, tenant_id) -> dict:
    """Every usage metric of the tenant's current period, exactly (counters plus unrolled entries)."""
    from saas.metering.services import Metering, current_period

    with app.app_context():
        values = Metering().usage_for(db.session.connection(), tenant_id, current_period(None).start)
        db.session.remove()
    return values


def service_with(transport, **collaborators):
    """A SendService like the app's (its session, numbers, accounts, WhatsApp rules ...), with ``transport``
    for sandbox numbers, a metering port of its own and no follow-ups (and any collaborator replaced).
    Call it in an app context."""
    from flask import current_app

    from saas.messaging.outbound import send_service
    from saas.messaging.outbound.send import SendService
    from saas.messaging.outbound.transports import Transports
    from saas.metering.services import Metering

    app_service = send_service(current_app)
    parts = {name: getattr(app_service, name) for name in (
        "session", "numbers", "accounts", "rules", "clock", "reconnecting", "journal", "interrupted_after",
        "concurrency", "consent")}
    parts.update(transports=Transports(sandbox=transport), metering=Metering(), enqueue=lambda *a: None)
    parts.update(collaborators)
    return SendService(**parts)


def call_send(service, sender_, payload, **kwargs):
    """Call ``service.send`` as the API would for ``sender_``'s tenant and sandbox number (in an app context)."""
    from saas.billing import entitlements
    from saas.tenants.services import tenant_snapshot

    tenant = tenant_snapshot(sender_.tenant_id)
    return service.send(tenant, entitlements.for_tenant(tenant), sender_.number, payload, **kwargs)
