"""Who may do what: every role against every portal view that changes something (and the pages of the areas).

A refused request answers 403 with the page that names the roles allowed, and changes nothing at all;
an allowed one is not refused for its role (it may still fail for its own reasons: no Stripe here, the plan).
"""
from __future__ import annotations

import io
import json
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from saas.extensions import db
from saas.messaging.tenant_webhooks import endpoints
from saas.messaging.models import WebhookDelivery
from saas.tenants.models import Tenant

from saas.tenants.models import ROLES
from saas.tenants.roles import PERMISSIONS
from tests.conftest import csrf_token
from tests.messaging.live import add_template, live_number
from tests.portal.team_helpers import Team, state

pytestmark = pytest.mark.usefixtures("graph")


# The rules, written out here rather than read from the code under test.
EXPECTED = {
    "keys": {"owner", "admin", "developer"},
    "numbers": {"owner", "admin"},
    "templates": {"owner", "admin", "developer"},
    "broadcasts": {"owner", "admin", "developer"},
    "webhooks": {"owner", "admin", "developer"},
    "billing": {"owner", "admin", "billing"},
    "members": {"owner", "admin"},
    "audit": {"owner", "admin"},
    "consent": {"owner", "admin"},
    "dashboard": {"owner", "admin", "developer", "billing"},
    "inbox": {"owner", "admin", "agent"},
    "contacts": {"owner", "admin", "developer"},
    "automation": {"owner", "admin", "developer"},
    "orders": {"owner", "admin", "developer", "agent"},
    "order_settings": {"owner", "admin", "developer"},
    "exports": {"owner", "admin", "developer", "billing"},
}


def test_the_table_in_code_is_the_rules():
    assert {area: set(roles) for area, roles in PERMISSIONS.items()} == EXPECTED


def _token(client):
    return csrf_token(client, "/dashboard")


# (area, method, path(team, ctx), form(client, team, ctx)) — ctx holds the live number and template ids.
ACTIONS = {
    "analytics page": ("dashboard", "GET", lambda t, c: "/analytics", None),
    "keys page": ("keys", "GET", lambda t, c: "/keys", None),
    "create key": ("keys", "POST", lambda t, c: "/keys", lambda cl, t, c: {"name": "CI"}),
    "revoke key": ("keys", "POST", lambda t, c: f"/keys/{t.key_id}/revoke", lambda cl, t, c: {}),
    "numbers page": ("numbers", "GET", lambda t, c: "/numbers", None),
    "connect number": ("numbers", "POST", lambda t, c: "/numbers", lambda cl, t, c: {
        "phone_number_id": c["new_number"].phone_number_id, "waba_id": c["new_number"].waba_id,
        "access_token": c["new_number"].token}),
    "test number": ("numbers", "POST", lambda t, c: f"/numbers/{c['number_pk']}/test", lambda cl, t, c: {}),
    "disconnect page": ("numbers", "GET", lambda t, c: f"/numbers/{c['number_pk']}/disconnect", None),
    "disconnect number": ("numbers", "POST", lambda t, c: f"/numbers/{c['number_pk']}/disconnect",
                          lambda cl, t, c: {}),
    "templates page": ("templates", "GET", lambda t, c: "/templates", None),
    "create template": ("templates", "POST", lambda t, c: "/templates", lambda cl, t, c: {
        "waba_id": c["waba_id"], "name": "order_shipped", "language": "en_US", "category": "UTILITY",
        "components": json.dumps([{"type": "BODY", "text": "Order {{1}} shipped"}])}),
    "sync templates": ("templates", "POST", lambda t, c: "/templates/sync", lambda cl, t, c: {}),
    "delete template": ("templates", "POST", lambda t, c: f"/templates/{c['template_id']}/delete",
                        lambda cl, t, c: {}),
    "broadcasts page": ("broadcasts", "GET", lambda t, c: "/broadcasts", None),
    "new broadcast": ("broadcasts", "GET", lambda t, c: "/broadcasts/new", None),
    "create broadcast": ("broadcasts", "POST", lambda t, c: "/broadcasts/new",
                         lambda cl, t, c: {"name": "Spring", "labels": "vip"}),
    "broadcast report": ("broadcasts", "GET", lambda t, c: "/broadcasts/1", None),
    "start broadcast": ("broadcasts", "POST", lambda t, c: "/broadcasts/1/start", lambda cl, t, c: {}),
    "export broadcast": ("broadcasts", "GET", lambda t, c: "/broadcasts/1/recipients.csv", None),
    "billing page": ("billing", "GET", lambda t, c: "/billing", None),
    "checkout": ("billing", "POST", lambda t, c: "/billing/checkout",
                 lambda cl, t, c: {"plan": "pro", "attempt": "0123456789abcdef"}),
    "customer portal": ("billing", "POST", lambda t, c: "/billing/portal", lambda cl, t, c: {}),
    "preview plan change": ("billing", "GET", lambda t, c: "/billing/change/pro", None),
    "change plan": ("billing", "POST", lambda t, c: "/billing/change/pro", lambda cl, t, c: {
        "plan": "pro", "attempt": "0123456789abcdef", "proration_date": "1700000000"}),
    "invoice page": ("billing", "GET", lambda t, c: "/billing/invoices/in_test_1", None),
    "exports page": ("exports", "GET", lambda t, c: "/exports", None),
    "export messages": ("exports", "GET", lambda t, c: "/exports/messages.csv", None),
    "checkout return": ("billing", "GET", lambda t, c: "/billing/success?session_id=cs_test_1", None),
    "checkout abandoned": ("billing", "GET", lambda t, c: "/billing/cancel", None),
    "webhooks page": ("webhooks", "GET", lambda t, c: "/webhooks", None),
    "point webhooks elsewhere": ("webhooks", "POST", lambda t, c: "/webhooks",
                                 lambda cl, t, c: {"url": "https://collector.example.net/steal"}),
    "rotate webhook secret": ("webhooks", "POST", lambda t, c: "/webhook-secret", lambda cl, t, c: {}),
    "pause webhooks": ("webhooks", "POST", lambda t, c: "/webhook-pause", lambda cl, t, c: {}),
    "webhook delivery": ("webhooks", "GET", lambda t, c: f"/webhook-deliveries/{c['delivery_id']}", None),
    "replay delivery": ("webhooks", "POST", lambda t, c: f"/webhook-deliveries/{c['delivery_id']}/replay",
                        lambda cl, t, c: {}),
    "team page": ("members", "GET", lambda t, c: "/team", None),
    "invite": ("members", "POST", lambda t, c: "/team",
               lambda cl, t, c: {"email": "new@team.example.com", "role": "developer"}),
    "revoke invite": ("members", "POST", lambda t, c: f"/team/invites/{t.invite_id}/revoke", lambda cl, t, c: {}),
    "change role": ("members", "POST", lambda t, c: f"/team/members/{t.spare_id}/role",
                    lambda cl, t, c: {"role": "billing"}),
    "remove member": ("members", "POST", lambda t, c: f"/team/members/{t.spare_billing_id}/remove",
                      lambda cl, t, c: {}),
    "audit log": ("audit", "GET", lambda t, c: "/audit", None),
    "consent page": ("consent", "GET", lambda t, c: "/consent", None),
    "save consent keywords": ("consent", "POST", lambda t, c: "/consent/keywords",
                              lambda cl, t, c: {"opt_out": "STOP\nİPTAL", "opt_in": "START"}),
    "record a contact's consent": ("consent", "POST", lambda t, c: f"/contacts/{c['contact_id']}/consent",
                                   lambda cl, t, c: {"number": c["number_pk"], "state": "opted_in",
                                                     "proof": "Said yes at the till", "next": "/consent"}),
    "inbox": ("inbox", "GET", lambda t, c: "/inbox", None),
    "inbox rows": ("inbox", "GET", lambda t, c: "/inbox/rows", None),
    "inbox stream": ("inbox", "GET", lambda t, c: "/inbox/stream", None),
    "inbox thread": ("inbox", "GET", lambda t, c: f"/inbox/threads/{c['thread_id']}", None),
    "inbox entries": ("inbox", "GET", lambda t, c: f"/inbox/threads/{c['thread_id']}/entries", None),
    "inbox media": ("inbox", "GET", lambda t, c: "/inbox/media/1003383421387256", None),
    "inbox reply": ("inbox", "POST", lambda t, c: f"/inbox/threads/{c['thread_id']}/reply",
                    lambda cl, t, c: {"kind": "text", "text": "hello"}),
    "inbox status": ("inbox", "POST", lambda t, c: f"/inbox/threads/{c['thread_id']}/status",
                     lambda cl, t, c: {"status": "resolved"}),
    "inbox assign": ("inbox", "POST", lambda t, c: f"/inbox/threads/{c['thread_id']}/assign",
                     lambda cl, t, c: {"assignee_id": ""}),
    "inbox note": ("inbox", "POST", lambda t, c: f"/inbox/threads/{c['thread_id']}/notes",
                   lambda cl, t, c: {"body": "a note"}),
    "inbox availability": ("inbox", "POST", lambda t, c: "/inbox/availability",
                           lambda cl, t, c: {"available": "y", "max_open": "3"}),
    "inbox settings": ("inbox", "POST", lambda t, c: "/inbox/settings", lambda cl, t, c: {"auto_assign": "y"}),
    "inbox saved reply": ("inbox", "POST", lambda t, c: "/inbox/saved-replies",
                          lambda cl, t, c: {"shortcut": "hi", "body": "Hello!"}),
    "automation page": ("automation", "GET", lambda t, c: "/automation", None),
    "automation settings": ("automation", "POST", lambda t, c: "/automation/settings",
                            lambda cl, t, c: {"timezone": "Europe/Berlin", "replies_per_hour": "2"}),
    "new rule page": ("automation", "GET", lambda t, c: "/automation/rules/new", None),
    "create rule": ("automation", "POST", lambda t, c: "/automation/rules/new", lambda cl, t, c: {
        "name": "Hi", "trigger": "first_message", "match": "contains", "priority": "1", "reply_kind": "text",
        "reply_text": "Hello", "consent": "", "assign": ""}),
    "rule page": ("automation", "GET", lambda t, c: "/automation/rules/1", None),
    "edit rule": ("automation", "POST", lambda t, c: "/automation/rules/1", lambda cl, t, c: {"name": "x"}),
    "replay rule": ("automation", "POST", lambda t, c: "/automation/rules/1/replay", lambda cl, t, c: {}),
    "delete rule": ("automation", "POST", lambda t, c: "/automation/rules/1/delete", lambda cl, t, c: {}),
    "business hours": ("automation", "POST", lambda t, c: f"/automation/hours/{c['number_pk']}",
                       lambda cl, t, c: {"open_0": "09:00", "close_0": "17:00"}),
    "business hours page": ("automation", "GET", lambda t, c: f"/automation/hours/{c['number_pk']}", None),
    "contacts page": ("contacts", "GET", lambda t, c: "/contacts", None),
    "new contact page": ("contacts", "GET", lambda t, c: "/contacts/new", None),
    "create contact": ("contacts", "POST", lambda t, c: "/contacts/new",
                       lambda cl, t, c: {"wa_id": "+90 532 999 99 99", "name": "New"}),
    "contact page": ("contacts", "GET", lambda t, c: f"/contacts/{c['contact_id']}", None),
    "edit contact page": ("contacts", "GET", lambda t, c: f"/contacts/{c['contact_id']}/edit", None),
    "edit contact": ("contacts", "POST", lambda t, c: f"/contacts/{c['contact_id']}/edit",
                     lambda cl, t, c: {"name": "Renamed", "labels": "vip"}),
    "delete contact page": ("contacts", "GET", lambda t, c: f"/contacts/{c['contact_id']}/delete", None),
    "delete contact": ("contacts", "POST", lambda t, c: f"/contacts/{c['contact_id']}/delete", lambda cl, t, c: {}),
    "label contacts": ("contacts", "POST", lambda t, c: "/contacts/labels",
                       lambda cl, t, c: {"label": "vip", "action": "add", "contact_ids": [c["contact_id"]]}),
    "export contacts": ("contacts", "GET", lambda t, c: "/contacts/export.csv", None),
    "contact attributes page": ("contacts", "GET", lambda t, c: "/contacts/attributes", None),
    "define attribute": ("contacts", "POST", lambda t, c: "/contacts/attributes",
                         lambda cl, t, c: {"key": "birthday", "type": "date"}),
    "remove attribute": ("contacts", "POST", lambda t, c: "/contacts/attributes/city/remove", lambda cl, t, c: {}),
    "import page": ("contacts", "GET", lambda t, c: "/contacts/import", None),
    "upload import": ("contacts", "POST", lambda t, c: "/contacts/import",
                      lambda cl, t, c: {"file": (io.BytesIO(b"wa_id\n905321111111\n"), "c.csv")}),
    "import page of one": ("contacts", "GET", lambda t, c: f"/contacts/import/{c['import_id']}", None),
    "map import": ("contacts", "POST", lambda t, c: f"/contacts/import/{c['import_id']}/mapping",
                   lambda cl, t, c: {"column-0": "wa_id"}),
    "import errors": ("contacts", "GET", lambda t, c: f"/contacts/import/{c['import_id']}/errors.csv", None),
    "orders page": ("orders", "GET", lambda t, c: "/orders", None),
    "order page": ("orders", "GET", lambda t, c: "/orders/1", None),
    "confirm order": ("orders", "POST", lambda t, c: "/orders/1/confirm", lambda cl, t, c: {}),
    "order notifications page": ("order_settings", "GET", lambda t, c: "/order-notifications", None),
    "order notification page": ("order_settings", "GET", lambda t, c: "/order-notifications/paid", None),
    "map order notification": ("order_settings", "POST", lambda t, c: "/order-notifications/paid",
                               lambda cl, t, c: {"pick": ""}),
    "unmap order notification": ("order_settings", "POST", lambda t, c: "/order-notifications/paid/delete",
                                 lambda cl, t, c: {}),
    "shop connection page": ("order_settings", "GET", lambda t, c: "/shop-connection", None),
    "connect shop": ("order_settings", "POST", lambda t, c: "/shop-connection/woocommerce", lambda cl, t, c: {}),
}


def test_every_area_in_the_matrix_is_in_the_table():
    assert {area for area, *_ in ACTIONS.values()} <= set(PERMISSIONS)
    assert set(ROLES) == {"owner", "admin", "developer", "billing", "agent"}


# Blueprints that serve a tenant's pages (the portal's page modules are nested under "portal"); every other
# blueprint registered on the app is named with the reason it is not one, so a new blueprint must be placed on
# one side or the other.
TENANT_BLUEPRINTS = {"portal"}
NOT_TENANT_PAGES = {
    "admin", "admin_plans", "admin_rates", "admin_analytics",  # the platform admins' console, behind its own check (saas/admin/access.py)
    "api", "cloud", "openapi",       # API-key requests, and the public API reference
    "webhooks", "whatsapp_webhooks",  # signed calls from Stripe and Meta
    "shop_webhooks",                 # signed calls from shops (Shopify, WooCommerce)
    "",                              # static files
}

# Open to every member whatever the role (a user's own account, the dashboard), or to anyone before logging in.
OPEN_TO_EVERY_MEMBER = {
    "portal.home.index", "portal.home.dashboard",
    "portal.auth.signup", "portal.auth.login", "portal.auth.logout", "portal.twofactor.login_code",
    "portal.team.leave", "portal.team.accept_invite",
    "portal.account.index", "portal.account.change_password", "portal.account.end_other_sessions",
    "portal.twofactor.index", "portal.twofactor.enable", "portal.twofactor.disable",
    "portal.email_links.check_email", "portal.email_links.forgot_password", "portal.email_links.reset_password",
    "portal.email_links.verify_email", "portal.email_links.resend_verification",
}


def _top_blueprint(endpoint: str) -> str:
    """The blueprint registered on the app that serves ``endpoint`` ("" for the app's own, like static)."""
    return endpoint.partition(".")[0] if "." in endpoint else ""


def _tenant_routes(app) -> set[tuple[str, str]]:
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules()
            if _top_blueprint(rule.endpoint) in TENANT_BLUEPRINTS
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_blueprint_serves_tenant_pages_or_is_named_as_not_doing_so(app):
    blueprints = {_top_blueprint(rule.endpoint) for rule in app.url_map.iter_rules()}
    assert blueprints == TENANT_BLUEPRINTS | NOT_TENANT_PAGES


def test_every_tenant_route_is_in_the_matrix_or_open_to_every_member(app):
    """Every route of every tenant blueprint, GET and POST alike, is tried by every role in ACTIONS under its area,
    or is listed as open to every member: a new route without either fails here."""
    adapter = app.url_map.bind("localhost")
    placeholders = SimpleNamespace(key_id=1, invite_id=1, spare_id=1, spare_billing_id=1)
    ctx = {"number_pk": 1, "template_id": 1, "delivery_id": 1, "waba_id": "1", "new_number": None, "contact_id": 1,
           "thread_id": 1, "import_id": 1}
    areas: dict[tuple[str, str], str] = {}
    for name, (area, method, path, _) in ACTIONS.items():
        endpoint, _ = adapter.match(urlsplit(path(placeholders, ctx)).path, method=method)
        assert areas.setdefault((endpoint, method), area) == area, name
    routes = _tenant_routes(app)
    open_routes = {(endpoint, method) for endpoint, method in routes if endpoint in OPEN_TO_EVERY_MEMBER}
    assert OPEN_TO_EVERY_MEMBER <= {endpoint for endpoint, _ in routes}, "an open entry names no route"
    assert not set(areas) & open_routes
    assert routes - open_routes == set(areas), "routes missing from the matrix (or matrix entries with no route)"
    # Each page's methods belong to one area.
    by_endpoint: dict[str, set[str]] = {}
    for (endpoint, _), area in areas.items():
        by_endpoint.setdefault(endpoint, set()).add(area)
    assert all(len(found) == 1 for found in by_endpoint.values()), by_endpoint


@pytest.fixture
def team(app, graph):
    team = Team(app)
    phone_number_id, number_pk, waba_id, token = live_number(app, graph, team.id)
    template_id = add_template(app, team.id, waba_id, "welcome")
    team.ctx = {"number_pk": number_pk, "waba_id": waba_id, "template_id": template_id,
                "new_number": graph.add_number(waba_id=waba_id), "delivery_id": webhook_delivery(app, team.id),
                "thread_id": inbox_thread(app, team.id, number_pk), **contact_rows(app, team.id)}
    return team


def inbox_thread(app, tenant_id, number_pk) -> int:
    """A thread of the tenant's inbox, as an inbound message makes one."""
    from saas.inbox.threads import record_inbound

    with app.app_context():
        touched = record_inbound(db.session.connection(), tenant_id, number_pk, "16505551234", "wamid.team-in-1",
                                 {"type": "text", "text": {"body": "hi"}}, None)
        db.session.commit()
        db.session.remove()
    return touched.thread_id


def contact_rows(app, tenant_id) -> dict:
    """A contact, an attribute (city) and an uploaded import waiting for its mapping, to act on."""
    from saas.contacts.models import AttributeDefinition, Contact, ContactImport

    with app.app_context():
        contact = Contact(tenant_id=tenant_id, wa_id="905321234567", name="Ayşe", attributes={}, source="api")
        upload = ContactImport(tenant_id=tenant_id, filename="c.csv", content=b"wa_id\n905321111112\n",
                               status="uploaded", total_rows=1, mapping={})
        db.session.add_all([contact, upload, AttributeDefinition(tenant_id=tenant_id, key="city", type="text")])
        db.session.commit()
        ids = {"contact_id": contact.id, "import_id": upload.id}
        db.session.remove()
    return ids


def webhook_delivery(app, tenant_id) -> int:
    """The tenant's webhook endpoint, and one delivered event to look at and replay."""
    with app.app_context():
        endpoint, _ = endpoints.save_endpoint(db.session.get(Tenant, tenant_id), "https://hooks.team.example.com/in")
        delivery = WebhookDelivery(tenant_id=tenant_id, endpoint_id=endpoint.id, event_type="message",
                                   event_key="wamid.team-1:message", sequence_key="wamid.team-1",
                                   payload={"object": "whatsapp_business_account", "entry": []}, state="delivered",
                                   attempts=1)
        db.session.add(delivery)
        db.session.commit()
        delivery_id = delivery.id
        db.session.remove()
    return delivery_id


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_role_against_action(app, team, role, action):
    area, method, path, form = ACTIONS[action]
    client = team.client(role)
    url = path(team, team.ctx)
    before = state(app)
    if method == "GET":
        response = client.get(url)
    else:
        data = {"csrf_token": _token(client), **form(client, team, team.ctx)}
        response = client.post(url, data=data)
    page = response.get_data(as_text=True)
    if role in EXPECTED[area]:
        assert 'id="forbidden"' not in page, f"{role} was refused {action}"
        assert response.status_code != 500
    else:
        assert response.status_code == 403, f"{role} was not refused {action}: {response.status_code}"
        assert 'id="forbidden"' in page and "Your role does not allow this" in page
        assert state(app) == before, f"{action} by {role} changed something although refused"


@pytest.mark.parametrize("role, expected", [
    ("owner", {"Numbers", "API keys", "Contacts", "Templates", "Broadcasts", "Webhooks", "Billing", "Team",
               "Audit log", "Consent", "Inbox", "Orders"}),
    ("admin", {"Numbers", "API keys", "Contacts", "Templates", "Broadcasts", "Webhooks", "Billing", "Team",
               "Audit log", "Consent", "Inbox", "Orders"}),
    ("developer", {"API keys", "Contacts", "Templates", "Broadcasts", "Webhooks", "Orders"}),
    ("billing", {"Billing"}),
    ("agent", {"Inbox", "Orders"}),
])
def test_the_nav_shows_only_what_the_role_may_use(app, team, role, expected):
    page = team.client(role).get("/dashboard", follow_redirects=True).get_data(as_text=True)
    nav = page.split("<nav>")[1].split("</nav>")[0]
    shown = {name for name in ("Numbers", "API keys", "Contacts", "Templates", "Broadcasts", "Webhooks", "Billing",
                               "Team", "Audit log", "Consent", "Inbox", "Orders")
             if f">{name}</a>" in nav}
    assert shown == expected
