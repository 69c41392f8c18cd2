"""Who may do what: every role against every portal view that changes something (and the pages of the areas).

A refused request answers 403 with the page that names the roles allowed, and changes nothing at all;
an allowed one is not refused for its role (it may still fail for its own reasons: no Stripe here, the plan).
"""
from __future__ import annotations

import json

import pytest

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
    "webhooks": {"owner", "admin", "developer"},
    "billing": {"owner", "admin", "billing"},
    "members": {"owner", "admin"},
    "audit": {"owner", "admin"},
}


def test_the_table_in_code_is_the_rules():
    assert {area: set(roles) for area, roles in PERMISSIONS.items()} == EXPECTED


def _token(client):
    return csrf_token(client, "/dashboard")


# (area, method, path(team, ctx), form(client, team, ctx)) — ctx holds the live number and template ids.
ACTIONS = {
    "keys page": ("keys", "GET", lambda t, c: "/keys", None),
    "create key": ("keys", "POST", lambda t, c: "/keys", lambda cl, t, c: {"name": "CI"}),
    "revoke key": ("keys", "POST", lambda t, c: f"/keys/{t.key_id}/revoke", lambda cl, t, c: {}),
    "numbers page": ("numbers", "GET", lambda t, c: "/numbers", None),
    "connect number": ("numbers", "POST", lambda t, c: "/numbers", lambda cl, t, c: {
        "phone_number_id": c["new_number"].phone_number_id, "waba_id": c["new_number"].waba_id,
        "access_token": c["new_number"].token}),
    "test number": ("numbers", "POST", lambda t, c: f"/numbers/{c['number_pk']}/test", lambda cl, t, c: {}),
    "disconnect number": ("numbers", "POST", lambda t, c: f"/numbers/{c['number_pk']}/disconnect",
                          lambda cl, t, c: {}),
    "templates page": ("templates", "GET", lambda t, c: "/templates", None),
    "create template": ("templates", "POST", lambda t, c: "/templates", lambda cl, t, c: {
        "waba_id": c["waba_id"], "name": "order_shipped", "language": "en_US", "category": "UTILITY",
        "components": json.dumps([{"type": "BODY", "text": "Order {{1}} shipped"}])}),
    "sync templates": ("templates", "POST", lambda t, c: "/templates/sync", lambda cl, t, c: {}),
    "delete template": ("templates", "POST", lambda t, c: f"/templates/{c['template_id']}/delete",
                        lambda cl, t, c: {}),
    "billing page": ("billing", "GET", lambda t, c: "/billing", None),
    "checkout": ("billing", "POST", lambda t, c: "/billing/checkout",
                 lambda cl, t, c: {"plan": "pro", "attempt": "0123456789abcdef"}),
    "customer portal": ("billing", "POST", lambda t, c: "/billing/portal", lambda cl, t, c: {}),
    "preview plan change": ("billing", "GET", lambda t, c: "/billing/change/pro", None),
    "change plan": ("billing", "POST", lambda t, c: "/billing/change/pro", lambda cl, t, c: {
        "plan": "pro", "attempt": "0123456789abcdef", "proration_date": "1700000000"}),
    "checkout return": ("billing", "GET", lambda t, c: "/billing/success?session_id=cs_test_1", None),
    "team page": ("members", "GET", lambda t, c: "/team", None),
    "invite": ("members", "POST", lambda t, c: "/team",
               lambda cl, t, c: {"email": "new@team.example.com", "role": "developer"}),
    "revoke invite": ("members", "POST", lambda t, c: f"/team/invites/{t.invite_id}/revoke", lambda cl, t, c: {}),
    "change role": ("members", "POST", lambda t, c: f"/team/members/{t.spare_id}/role",
                    lambda cl, t, c: {"role": "billing"}),
    "remove member": ("members", "POST", lambda t, c: f"/team/members/{t.spare_billing_id}/remove",
                      lambda cl, t, c: {}),
    "audit log": ("audit", "GET", lambda t, c: "/audit", None),
}


def test_every_area_in_the_matrix_is_in_the_table():
    assert {area for area, *_ in ACTIONS.values()} <= set(PERMISSIONS)
    assert set(ROLES) == {"owner", "admin", "developer", "billing"}


def test_every_portal_view_that_changes_something_is_in_the_matrix(app):
    """A new POST view on the portal must be added to the matrix (or be one of the few open to everyone)."""
    open_to_all = {"portal.logout", "portal.login", "portal.signup", "portal.leave_team", "portal.accept_invite",
                   # A user's own account, whatever the role: password, sessions, two-factor, email links.
                   "portal.change_password", "portal.end_other_sessions", "portal.enable_two_factor",
                   "portal.disable_two_factor", "portal.login_code", "portal.forgot_password",
                   "portal.reset_password", "portal.resend_verification", "portal.verify_email"}
    posts = {rule.endpoint for rule in app.url_map.iter_rules()
             if "POST" in rule.methods and rule.endpoint.split(".")[0] in ("portal", "templates")}
    covered = {"portal.keys", "portal.revoke_key", "portal.numbers", "portal.test_number",
               "portal.disconnect_number", "templates.create", "templates.sync", "templates.delete",
               "portal.billing_checkout", "portal.billing_portal", "portal.billing_change_confirm",
               "portal.team_page", "portal.revoke_invite", "portal.change_role", "portal.remove_member"}
    assert posts - open_to_all == covered


@pytest.fixture
def team(app, graph):
    team = Team(app)
    phone_number_id, number_pk, waba_id, token = live_number(app, graph, team.id)
    template_id = add_template(app, team.id, waba_id, "welcome")
    team.ctx = {"number_pk": number_pk, "waba_id": waba_id, "template_id": template_id,
                "new_number": graph.add_number(waba_id=waba_id)}
    return team


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
    ("owner", {"Numbers", "API keys", "Templates", "Billing", "Team", "Audit log"}),
    ("admin", {"Numbers", "API keys", "Templates", "Billing", "Team", "Audit log"}),
    ("developer", {"API keys", "Templates"}),
    ("billing", {"Billing"}),
])
def test_the_nav_shows_only_what_the_role_may_use(app, team, role, expected):
    page = team.client(role).get("/dashboard").get_data(as_text=True)
    nav = page.split("<nav>")[1].split("</nav>")[0]
    shown = {name for name in ("Numbers", "API keys", "Templates", "Billing", "Team", "Audit log")
             if f">{name}</a>" in nav}
    assert shown == expected
