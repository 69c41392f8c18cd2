"""The agent role sees the inbox only; agent seats are the plan's, enforced on invitations and role changes."""
from __future__ import annotations

from flask import url_for

from tests.conftest import csrf_token
from tests.inbox.helpers import add_member, login, make_shop


def _pages_without_arguments(app) -> list[str]:
    with app.test_request_context():
        return sorted({url_for(rule.endpoint) for rule in app.url_map.iter_rules()
                       if rule.endpoint.startswith("portal.") and "GET" in rule.methods and not rule.arguments})


def test_an_agent_sees_the_inbox_and_nothing_else_of_the_tenant(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    add_member(app, shop.tenant_id, "agent@shop.example.com", "agent")
    login(client, "agent@shop.example.com")
    # Their own account (password, two-factor, sessions) and leaving the team stay theirs.
    own = {"/inbox", "/inbox/rows", "/inbox/stream", "/account", "/account/two-factor", "/team/leave", "/", "/docs",
           "/logout"}
    public = {"/login", "/signup", "/forgot-password", "/signup/check-email", "/login/code", "/verify-email",
              "/verify-email/sent"}
    checked = []
    for path in _pages_without_arguments(app):
        if path in own or path in public or path == "/inbox/stream":
            continue
        response = client.get(path)
        if path == "/dashboard":
            assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
            continue
        assert response.status_code == 403, (path, response.status_code)
        checked.append(path)
    assert {"/billing", "/keys", "/numbers", "/team", "/webhooks", "/audit", "/templates"} <= set(checked)
    page = client.get("/inbox")
    assert page.status_code == 200
    nav = page.get_data(as_text=True).split("</nav>")[0]
    assert "Inbox" in nav and "Billing" not in nav and "Dashboard" not in nav
    assert client.post("/inbox/settings", data={"csrf_token": csrf_token(client, "/inbox")}).status_code == 403


def _invite(client, email, role):
    token = csrf_token(client, "/team")
    return client.post("/team", data={"csrf_token": token, "email": email, "role": role})


def test_agent_invitations_stop_at_the_plans_seats(app, client, whatsapp):
    shop = make_shop(app, whatsapp)  # starter: 2 inbox seats
    add_member(app, shop.tenant_id, "first@shop.example.com", "agent")
    login(client, shop.owner_email)
    assert _invite(client, "second@shop.example.com", "agent").status_code == 201
    refused = _invite(client, "third@shop.example.com", "agent")
    assert refused.status_code == 400
    assert "2 agent seats" in refused.get_data(as_text=True)
    assert _invite(client, "dev@shop.example.com", "developer").status_code == 201  # other roles take no seat
    dev_id = add_member(app, shop.tenant_id, "dev2@shop.example.com", "developer")
    token = csrf_token(client, "/team")
    moved = client.post(f"/team/members/{dev_id}/role", data={"csrf_token": token, "role": "agent"})
    assert moved.status_code == 409 and "agent seats" in moved.get_data(as_text=True)


def test_a_plan_without_the_inbox_has_no_agent_seats(app, client, whatsapp):
    shop = make_shop(app, whatsapp, plan="free")
    login(client, shop.owner_email)
    assert _invite(client, "agent@shop.example.com", "agent").status_code == 400
    assert client.get("/inbox").status_code == 403
