"""A tenant with one member of every role, each able to log in on their own test client."""
from __future__ import annotations

from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from saas.audit.models import AuditEvent
from saas.contacts.models import AttributeDefinition, Consent, ConsentKeyword, Contact, ContactImport, ContactLabel
from saas.extensions import db
from saas.messaging.models import PhoneNumber, Template, WebhookDelivery, WebhookEndpoint
from saas.tenants.models import ApiKey, Invite, Tenant, User
from tests.conftest import csrf_token
from tests.factories import make_key, make_tenant

PASSWORD = "correct horse"
_HASH = generate_password_hash(PASSWORD)  # hashed once: scrypt is slow on purpose


def add_user(app, tenant_id, email, role) -> int:
    with app.app_context():
        user = User(tenant_id=tenant_id, email=email, password_hash=_HASH, role=role)
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return user_id


def login(app, email, password=PASSWORD):
    client = app.test_client()
    response = client.post("/login", data={"csrf_token": csrf_token(client, "/login"), "email": email,
                                           "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


class Team:
    """A Starter tenant: owner@, admin@, developer@, billing@, agent@, a spare developer and billing member to
    act on, a key, a pending invitation."""

    def __init__(self, app, plan="starter", domain="team.example.com"):
        self.app = app
        with app.app_context():
            tenant = make_tenant(plan, name="Team Ltd", email=f"owner@{domain}", password=PASSWORD)
            self.id = tenant.id
            make_key(tenant, "existing")
            self.key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id))
            self.owner_id = tenant.users[0].id
            db.session.remove()
        self.domain = domain
        self.ids = {"owner": self.owner_id}
        for role in ("admin", "developer", "billing", "agent"):
            self.ids[role] = add_user(app, self.id, f"{role}@{domain}", role)
        self.spare_id = add_user(app, self.id, f"spare@{domain}", "developer")
        self.spare_billing_id = add_user(app, self.id, f"spare-billing@{domain}", "billing")
        from saas.tenants import team

        with app.app_context():
            owner = db.session.get(User, self.owner_id)
            self.invite_id = team.invite(owner, db.session.get(Tenant, self.id), f"pending@{domain}",
                                         "developer").invite.id
            db.session.remove()

    def email(self, role):
        return f"{role}@{self.domain}"

    def client(self, role):
        return login(self.app, self.email(role))


def state(app) -> dict:
    """Everything a refused request must leave as it was."""
    with app.app_context():
        result = {
            "keys": sorted(db.session.execute(select(ApiKey.id, ApiKey.revoked_at)).all()),
            "users": sorted(db.session.execute(select(User.id, User.tenant_id, User.role)).all()),
            "invites": sorted(db.session.execute(select(Invite.id, Invite.revoked_at, Invite.accepted_at)).all()),
            "numbers": sorted(db.session.execute(select(PhoneNumber.id, PhoneNumber.disconnected_at,
                                                        PhoneNumber.last_checked_at)).all()),
            "templates": db.session.scalar(select(func.count()).select_from(Template)),
            "audit": db.session.scalar(select(func.count()).select_from(AuditEvent)),
            "customers": sorted(db.session.execute(select(Tenant.id, Tenant.stripe_customer_id)).all()),
            "webhook endpoints": sorted(db.session.execute(select(
                WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.signing_secret_encrypted,
                WebhookEndpoint.active)).all()),
            "webhook deliveries": sorted(db.session.execute(select(WebhookDelivery.id, WebhookDelivery.state)).all()),
            "consents": sorted(db.session.execute(select(Consent.id, Consent.state, Consent.changed_at)).all()),
            "keywords": sorted(db.session.execute(select(ConsentKeyword.keyword, ConsentKeyword.action)).all()),
            "contacts": sorted(db.session.execute(select(Contact.id, Contact.name, Contact.updated_at)).all()),
            "contact labels": db.session.scalar(select(func.count()).select_from(ContactLabel)),
            "contact imports": sorted(db.session.execute(select(ContactImport.id, ContactImport.status)).all()),
            "contact attributes": sorted(db.session.scalars(select(AttributeDefinition.key)).all()),
        }
        db.session.remove()
    return result


def audit_actions(app, tenant_id) -> list[tuple[str, str]]:
    with app.app_context():
        rows = [(e.action, e.actor) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.tenant_id == tenant_id).order_by(AuditEvent.id))]
        db.session.remove()
    return rows
