"""The team: invitations (every way a link can be good or bad), roles, removal, leaving, the last owner,
the audit log of every tenant-side change and its portal page."""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from saas.audit import services as audit
from saas.extensions import db
from saas.tenants import team as team_service
from saas.tenants.models import Invite, Tenant, User
from saas.timeutil import utcnow
from tests.conftest import csrf_token
from tests.portal.team_helpers import Team, add_user, audit_actions, login, state

LINK = re.compile(r'<code id="invite-url">([^<]+)</code>')


@pytest.fixture
def team(app):
    return Team(app)


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/dashboard"), **data})


def invite(client, email, role="developer") -> str:
    response = post(client, "/team", email=email, role=role)
    assert response.status_code == 201, response.get_data(as_text=True)
    return LINK.search(response.get_data(as_text=True)).group(1)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def user_row(app, email):
    with app.app_context():
        row = db.session.execute(select(User.tenant_id, User.role).where(User.email == email)).first()
        db.session.remove()
    return tuple(row) if row else None


def join(app, link, password="a new password"):
    client = app.test_client()
    page = client.get(path_of(link))
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client, client.post(path_of(link), data={"csrf_token": token, "password": password})


# -- inviting and joining --------------------------------------------------------------------

def test_a_new_user_joins_with_the_link_and_is_logged_in_with_the_role(app, team):
    owner = team.client("owner")
    link = invite(owner, "Newcomer@Team.example.com", "developer")
    assert team_service.delivered[-1] == ("newcomer@team.example.com", link)
    client, response = join(app, link)
    assert response.status_code == 303 and response.headers["Location"].endswith("/dashboard")
    assert user_row(app, "newcomer@team.example.com") == (team.id, "developer")
    assert client.get("/keys").status_code == 200
    assert client.get("/billing").status_code == 403
    assert ("member.joined", "newcomer@team.example.com") in audit_actions(app, team.id)


def test_the_link_is_shown_once_and_only_its_hash_is_stored(app, team):
    link = invite(team.client("owner"), "x@team.example.com")
    token = link.rsplit("/", 1)[1]
    with app.app_context():
        hashes = list(db.session.scalars(select(Invite.token_hash)))
        db.session.remove()
    assert token not in hashes and team_service.hash_token(token) in hashes


def test_a_short_password_is_a_form_error_and_joins_nothing(app, team):
    link = invite(team.client("owner"), "x@team.example.com")
    _, response = join(app, link, password="short")
    assert response.status_code == 400 and 'class="field-error"' in response.get_data(as_text=True)
    assert user_row(app, "x@team.example.com") is None


def test_a_logged_in_user_with_the_invited_email_accepts(app, team):
    make_tenant_detached(app, "drifter@elsewhere.example.com")
    link = invite(team.client("owner"), "drifter@elsewhere.example.com", "billing")
    client = login(app, "drifter@elsewhere.example.com")
    assert client.get("/dashboard").status_code == 403  # no team yet
    page = client.get(path_of(link))
    assert page.status_code == 200 and 'id="accept"' in page.get_data(as_text=True)
    response = post(client, path_of(link))
    assert response.status_code == 303
    assert user_row(app, "drifter@elsewhere.example.com") == (team.id, "billing")
    assert client.get("/billing").status_code == 200


def test_opening_an_invite_link_joins_nobody_until_its_form_is_posted(app, team):
    # Mail systems' link scanners open links: a GET shows the form and nothing more.
    make_tenant_detached(app, "drifter@elsewhere.example.com")
    owner = team.client("owner")
    new_link = invite(owner, "fresh@team.example.com")
    known_link = invite(owner, "drifter@elsewhere.example.com", "billing")
    drifter = login(app, "drifter@elsewhere.example.com")
    for client, link in ((app.test_client(), new_link), (app.test_client(), known_link), (drifter, known_link)):
        assert client.get(path_of(link)).status_code == 200
        assert client.get(path_of(link)).status_code == 200
    assert user_row(app, "fresh@team.example.com") is None
    assert user_row(app, "drifter@elsewhere.example.com") == (None, "developer")
    # Both links still work afterwards.
    assert join(app, new_link)[1].status_code == 303
    assert post(drifter, path_of(known_link)).status_code == 303
    assert user_row(app, "drifter@elsewhere.example.com") == (team.id, "billing")


def make_tenant_detached(app, email):
    """A user with a login but no team (left or removed earlier)."""
    return add_user(app, None, email, "developer")


def test_an_existing_account_is_asked_to_log_in_without_a_password_form(app, team):
    make_tenant_detached(app, "drifter@elsewhere.example.com")
    link = invite(team.client("owner"), "drifter@elsewhere.example.com")
    page = app.test_client().get(path_of(link)).get_data(as_text=True)
    assert 'id="login-first"' in page and 'id="join"' not in page


@pytest.mark.parametrize("case", ["expired", "revoked", "reused", "tampered"])
def test_an_unusable_link_says_why_and_joins_nobody(app, team, case):
    link = invite(team.client("owner"), "late@team.example.com")
    if case == "expired":
        with app.app_context():
            db.session.execute(update(Invite).where(Invite.email == "late@team.example.com")
                               .values(expires_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            db.session.remove()
    elif case == "revoked":
        with app.app_context():
            invite_id = db.session.scalar(select(Invite.id).where(Invite.email == "late@team.example.com"))
            db.session.remove()
        assert post(team.client("admin"), f"/team/invites/{invite_id}/revoke").status_code == 303
    elif case == "reused":
        join(app, link)
    elif case == "tampered":
        link = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    before = state(app)
    client = app.test_client()
    page = client.get(path_of(link))
    text = page.get_data(as_text=True)
    expected = {"expired": (410, "expired"), "revoked": (410, "withdrawn"), "reused": (410, "already used"),
                "tampered": (404, "not valid")}[case]
    assert page.status_code == expected[0] and expected[1] in text and 'id="invite-problem"' in text
    # Posting a password anyway changes nothing either.
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    refused = client.post(path_of(link), data={"csrf_token": token, "password": "a new password"})
    assert refused.status_code == expected[0]
    assert state(app) == before


def test_a_user_logged_in_with_another_email_cannot_accept(app, team):
    link = invite(team.client("owner"), "invited@team.example.com")
    make_tenant_detached(app, "drifter@elsewhere.example.com")  # free to join a team, but not invited
    client = login(app, "drifter@elsewhere.example.com")
    page = client.get(path_of(link))
    assert page.status_code == 403 and "another email address" in page.get_data(as_text=True)
    before = state(app)
    response = post(client, path_of(link))
    assert response.status_code == 403 and "another email address" in response.get_data(as_text=True)
    assert state(app) == before and user_row(app, "drifter@elsewhere.example.com") == (None, "developer")


def test_an_email_of_another_tenant_cannot_join_and_is_not_told_which(app, team):
    other = Team(app, domain="other.example.com")
    link = invite(team.client("owner"), "developer@other.example.com")
    client = other.client("developer")
    before = state(app)
    response = post(client, path_of(link))
    text = response.get_data(as_text=True)
    assert response.status_code == 403 and "already has an account with another organisation" in text
    assert state(app) == before
    assert user_row(app, "developer@other.example.com") == (other.id, "developer")
    # Without a session, the page asks to log in and offers no password form that could take the address.
    anonymous = app.test_client().get(path_of(link)).get_data(as_text=True)
    assert 'id="join"' not in anonymous and "other.example.com" not in anonymous.replace(
        "developer@other.example.com", "")


def test_an_existing_member_is_not_invited_again(app, team):
    response = post(team.client("owner"), "/team", email="developer@team.example.com", role="admin")
    assert response.status_code == 400 and "already a member" in response.get_data(as_text=True)


@pytest.mark.parametrize("email, role, message", [
    ("not an email", "developer", "email"),
    ("x" * 250 + "@example.com", "developer", "254"),
    ("ok@example.com", "emperor", "Not a valid choice"),
    ("nul\x00@example.com", "developer", "email"),
])
def test_bad_invite_input_is_a_form_error(app, team, email, role, message):
    before = state(app)
    response = post(team.client("owner"), "/team", email=email, role=role)
    assert response.status_code == 400
    assert state(app) == before


def test_only_an_owner_invites_an_owner(app, team):
    before = state(app)
    response = post(team.client("admin"), "/team", email="boss@team.example.com", role="owner")
    assert response.status_code == 400 and "Only an owner" in response.get_data(as_text=True)
    assert state(app) == before
    invite(team.client("owner"), "boss@team.example.com", "owner")


# -- roles, removal, leaving -----------------------------------------------------------------

def test_an_admin_changes_a_role_and_it_applies_at_once(app, team):
    developer = team.client("developer")
    assert developer.get("/keys").status_code == 200
    assert post(team.client("admin"), f"/team/members/{team.ids['developer']}/role", role="billing").status_code == 303
    assert user_row(app, "developer@team.example.com") == (team.id, "billing")
    assert developer.get("/keys").status_code == 403
    assert developer.get("/billing").status_code == 200


def test_an_admin_cannot_demote_or_remove_an_owner(app, team):
    add_user(app, team.id, "second-owner@team.example.com", "owner")
    admin = team.client("admin")
    before = state(app)
    assert post(admin, f"/team/members/{team.owner_id}/role", role="developer").status_code == 409
    assert post(admin, f"/team/members/{team.owner_id}/remove").status_code == 409
    assert post(admin, f"/team/members/{team.ids['developer']}/role", role="owner").status_code == 409
    assert state(app) == before


def test_a_removed_member_loses_access_at_once(app, team):
    developer = team.client("developer")
    assert post(team.client("admin"), f"/team/members/{team.ids['developer']}/remove").status_code == 303
    assert user_row(app, "developer@team.example.com") == (None, "developer")
    page = developer.get("/keys")
    assert page.status_code == 403 and 'id="no-team"' in page.get_data(as_text=True)
    assert ("member.removed", "admin@team.example.com") in audit_actions(app, team.id)


def test_another_tenants_member_or_invite_is_not_found(app, team):
    other = Team(app, domain="other.example.com")
    admin = team.client("admin")
    before = state(app)
    assert post(admin, f"/team/members/{other.ids['developer']}/remove").status_code == 404
    assert post(admin, f"/team/members/{other.ids['developer']}/role", role="billing").status_code == 404
    assert post(admin, f"/team/invites/{other.invite_id}/revoke").status_code == 404
    assert post(admin, "/team/members/not-a-number/remove").status_code == 404
    assert state(app) == before


def test_a_member_leaves_but_the_last_owner_cannot(app, team):
    developer = team.client("developer")
    assert post(developer, "/team/leave").status_code == 303
    assert user_row(app, "developer@team.example.com") == (None, "developer")
    owner = team.client("owner")
    before = state(app)
    response = post(owner, "/team/leave")
    assert response.status_code == 409 and "last owner" in response.get_data(as_text=True)
    assert state(app) == before


def test_the_last_owner_cannot_be_demoted_or_removed_even_by_themselves(app, team):
    owner = team.client("owner")
    before = state(app)
    assert post(owner, f"/team/members/{team.owner_id}/role", role="admin").status_code == 409
    assert post(owner, f"/team/members/{team.owner_id}/remove").status_code == 409
    assert state(app) == before
    second = add_user(app, team.id, "second-owner@team.example.com", "owner")
    assert post(owner, f"/team/members/{second}/role", role="admin").status_code == 303
    second = add_user(app, team.id, "third-owner@team.example.com", "owner")
    assert post(owner, f"/team/members/{team.owner_id}/role", role="admin").status_code == 303
    assert user_row(app, "owner@team.example.com") == (team.id, "admin")


def test_two_owners_removing_each_other_at_once_leave_one(app, team, monkeypatch):
    """Each removes the other on its own connection; the tenant's row lock makes the second see one owner left.

    The hook holds the first change after it counted the owners until the second arrives (or 1 s): without the
    lock both count two owners and both are removed.
    """
    second = add_user(app, team.id, "second-owner@team.example.com", "owner")
    arrived = threading.Barrier(2, timeout=1.5)

    def hold():
        try:
            arrived.wait()
        except threading.BrokenBarrierError:
            pass

    monkeypatch.setattr(team_service, "owners_checked", hold)
    results = {}

    def remove(actor_id, target_id):
        with app.app_context():
            actor = db.session.get(User, actor_id)
            tenant = db.session.get(Tenant, team.id)
            try:
                team_service.remove_member(actor, tenant, target_id)
                results[actor_id] = "removed"
            except team_service.TeamError as exc:
                results[actor_id] = exc.message
            finally:
                db.session.remove()

    threads = [threading.Thread(target=remove, args=(team.owner_id, second)),
               threading.Thread(target=remove, args=(second, team.owner_id))]
    if db_is_sqlite(app):
        pytest.skip("SQLite has no row locks; run with TEST_DATABASE_URL for the race")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    outcomes = list(results.values())
    assert len(outcomes) == 2 and outcomes.count("removed") == 1
    assert any("last owner" in outcome for outcome in outcomes)
    with app.app_context():
        owners = db.session.scalars(select(User.email).where(User.tenant_id == team.id, User.role == "owner")).all()
        db.session.remove()
    assert len(owners) == 1


def db_is_sqlite(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")


# -- the audit log ---------------------------------------------------------------------------

def test_every_team_and_key_change_is_audited_as_who_did_it(app, team):
    owner, admin = team.client("owner"), team.client("admin")
    with app.app_context():
        start = len(audit_actions(app, team.id))
    response = post(owner, "/keys", name="CI")
    assert response.status_code == 201
    assert post(owner, f"/keys/{team.key_id}/revoke").status_code == 302
    link = invite(admin, "newcomer@team.example.com", "developer")
    join(app, link)
    assert post(admin, f"/team/invites/{team.invite_id}/revoke").status_code == 303
    assert post(admin, f"/team/members/{team.spare_id}/role", role="billing").status_code == 303
    assert post(admin, f"/team/members/{team.spare_billing_id}/remove").status_code == 303
    assert post(team.client("developer"), "/team/leave").status_code == 303
    assert audit_actions(app, team.id)[start:] == [
        ("api_key.created", "owner@team.example.com"),
        ("api_key.revoked", "owner@team.example.com"),
        ("member.invited", "admin@team.example.com"),
        ("member.joined", "newcomer@team.example.com"),
        ("member.invite_revoked", "admin@team.example.com"),
        ("member.role_changed", "admin@team.example.com"),
        ("member.removed", "admin@team.example.com"),
        ("member.left", "developer@team.example.com"),
    ]


def test_a_refused_team_change_writes_no_audit_entry(app, team):
    before = len(audit_actions(app, team.id))
    post(team.client("owner"), f"/team/members/{team.owner_id}/remove")
    post(team.client("owner"), f"/keys/{team.key_id}/revoke")
    post(team.client("owner"), f"/keys/{team.key_id}/revoke")  # idempotent: one entry
    assert [a for a, _ in audit_actions(app, team.id)[before:]] == ["api_key.revoked"]


def test_the_audit_page_shows_this_tenants_entries_newest_first_with_bidi_inert(app, team):
    other = Team(app, domain="other.example.com")
    with app.app_context():
        audit.record("cli", "note.first", "first entry", tenant_id=team.id)
        audit.record("cli", "note.second", "evil \u202eelif.exe entry", tenant_id=team.id)
        audit.record("cli", "note.other", "OTHER TENANT SECRET", tenant_id=other.id)
        db.session.commit()
        db.session.remove()
    page = team.client("admin").get("/audit")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "OTHER TENANT SECRET" not in text and "other.example.com" not in text
    assert text.index("note.second") < text.index("note.first")
    assert "\u202e" not in text


def test_the_audit_page_is_paginated(app, team):
    with app.app_context():
        for n in range(55):
            audit.record("cli", "note.bulk", f"bulk entry {n:02d}", tenant_id=team.id)
        db.session.commit()
        db.session.remove()
    admin = team.client("admin")
    first = admin.get("/audit").get_data(as_text=True)
    assert "bulk entry 54" in first and 'rel="next"' in first and "bulk entry 00" not in first
    second = admin.get("/audit?page=2").get_data(as_text=True)
    assert "bulk entry 00" in second and "bulk entry 54" not in second
    assert admin.get("/audit?page=nonsense").status_code == 200
