"""Each action of a rule: replies of every kind (text, media, interactive, an approved template with its
variables), labels on and off, assignment (to a member, or round robin), consent in and out, and a named
event forwarded to the tenant's webhook."""
from __future__ import annotations

from sqlalchemy import select

from saas.contacts.models import Consent
from saas.extensions import db
from saas.inbox.models import Thread
from saas.messaging.models import WebhookDelivery, WebhookEndpoint
from saas.tenants.models import Tenant
from tests.automation.helpers import add_rule, pro_shop, runs_of, sent_to
from tests.inbox.helpers import CUSTOMER, add_member, post_inbound, text
from tests.messaging.live import add_template


def _reply(message: dict) -> list[dict]:
    return [{"type": "reply", "message": message}]


def test_media_interactive_and_template_replies(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    whatsapp.add_template(shop.waba_id, "order_status")
    add_template(app, shop.tenant_id, shop.waba_id, "order_status")  # "Hello {{1}}"
    add_rule(client, shop, name="menu", pattern="menu", actions=_reply(
        {"type": "image", "image": {"link": "https://example.com/menu.png", "caption": "Our menu"}}))
    add_rule(client, shop, name="choose", pattern="choose", actions=_reply({"type": "interactive", "interactive": {
        "type": "button", "body": {"text": "Which one?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}))
    add_rule(client, shop, name="status", pattern="status", actions=_reply({"type": "template", "template": {
        "name": "order_status", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "{name}"}]}]}}))
    for word in ("menu", "choose", "status"):
        post_inbound(app, client, shop, text(word))
    image, buttons, template = sent_to(whatsapp, CUSTOMER)
    assert image["image"]["link"] == "https://example.com/menu.png"
    assert buttons["interactive"]["action"]["buttons"][0]["reply"]["id"] == "a"
    assert template["template"]["components"][0]["parameters"][0]["text"] == "Sheena Nelson"
    assert [r.status for r in runs_of(app, shop.tenant_id)] == ["sent", "sent", "sent"]


def test_labels_consent_assignment_and_forwarding(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    agent = add_member(app, shop.tenant_id, f"agent@t{shop.tenant_id}.example.com", "agent")
    with app.app_context():
        db.session.add(WebhookEndpoint(tenant_id=shop.tenant_id, url="https://hooks.example.com/in",
                                       signing_secret_encrypted="x", secret_hint="x", active=True))
        db.session.commit()
    add_rule(client, shop, name="join", pattern="join", actions=[
        {"type": "opt_in"}, {"type": "add_label", "label": "member"}, {"type": "assign", "user_id": agent},
        {"type": "forward", "event": "joined"}])
    add_rule(client, shop, name="leave", pattern="leave", actions=[
        {"type": "opt_out"}, {"type": "remove_label", "label": "member"}])
    post_inbound(app, client, shop, text("join"))
    contact = client.get("/api/v1/contacts", headers=shop.headers).get_json()["data"][0]
    assert contact["labels"] == ["member"]
    with app.app_context():
        assert db.session.scalar(select(Consent.state).where(Consent.tenant_id == shop.tenant_id)) == "opted_in"
        thread = db.session.scalar(select(Thread).where(Thread.tenant_id == shop.tenant_id))
        assert thread.assignee_id == agent
        [delivery] = db.session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == shop.tenant_id, WebhookDelivery.event_type == "automation.joined")).all()
        assert delivery.payload["event"] == "joined" and delivery.payload["message"]["text"] == "join"
        db.session.remove()
    post_inbound(app, client, shop, text("leave"))
    contact = client.get("/api/v1/contacts", headers=shop.headers).get_json()["data"][0]
    assert contact["labels"] == []
    with app.app_context():
        assert db.session.scalar(select(Consent.state).where(Consent.tenant_id == shop.tenant_id)) == "opted_out"
        db.session.remove()
    assert sent_to(whatsapp, CUSTOMER) == []


def test_round_robin_assignment(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    agent = add_member(app, shop.tenant_id, f"rr@t{shop.tenant_id}.example.com", "agent")
    with app.app_context():
        from saas.inbox import actions

        actions.set_availability(db.session.get(Tenant, shop.tenant_id), agent, available=True)
        db.session.remove()
    add_rule(client, shop, name="support", pattern="help", actions=[{"type": "assign", "user_id": None}])
    post_inbound(app, client, shop, text("help me"))
    with app.app_context():
        assert db.session.scalar(select(Thread.assignee_id).where(Thread.tenant_id == shop.tenant_id)) == agent
        db.session.remove()
