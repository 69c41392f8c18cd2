"""Sessions that end (logout, password change, log out everywhere), a fresh session at login,
login and signup throttles, and password strength."""
from __future__ import annotations

import html
import re
import time

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.tenants.models import ApiKey, User
from tests.conftest import AuthActions, csrf_token

EMAIL = "owner@acme.example.com"
PASSWORD = "correct horse"
NEW_PASSWORD = "purple elephant umbrella"


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def copy_of(app, cookie: str):
    """Another browser holding a copy of a session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def key_count(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(ApiKey)).all())


@pytest.fixture
def short_throttles(app):
    """Throttles with windows of seconds, so a test can wait one out."""
    names = ("LOGIN_ACCOUNT_LIMITS", "LOGIN_ADDRESS_LIMITS", "SIGNUP_ADDRESS_LIMITS")
    saved = {name: app.config[name] for name in names}
    # Wide enough that a slow machine makes its attempts inside the window; tests wait for Retry-After.
    app.config.update(LOGIN_ACCOUNT_LIMITS="3/5 seconds;5/60 seconds", LOGIN_ADDRESS_LIMITS="6/30 seconds",
                      SIGNUP_ADDRESS_LIMITS="3/10 seconds")
    yield
    app.config.update(saved)


# -- sessions that end -----------------------------------------------------------------------------------

def test_logout_kills_a_copied_cookie_even_for_creating_keys(app, client, auth):
    auth.signup()
    copied = copy_of(app, session_cookie(client))
    token = csrf_token(copied, "/keys")  # the copy works before logout
    assert auth.logout().status_code == 302

    assert copied.get("/dashboard").status_code == 302
    assert copied.get("/dashboard").headers["Location"].startswith("/login")
    before = key_count(app)
    response = copied.post("/keys", data={"csrf_token": token, "name": "stolen"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert key_count(app) == before
    # The same copy, re-sent on the client that logged out, fails too.
    client.set_cookie("session", copied.get_cookie("session").value)
    assert client.get("/keys").status_code == 302


def test_password_change_ends_other_sessions_and_keeps_this_one(app, client, auth):
    auth.signup()
    other = app.test_client()
    AuthActions(other).login()
    assert other.get("/dashboard").status_code == 200

    token = csrf_token(client, "/account")
    response = client.post("/account/password", data={"csrf_token": token, "current_password": PASSWORD,
                                                      "new_password": NEW_PASSWORD})
    assert response.status_code == 303
    assert client.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 302
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 400
    assert AuthActions(app.test_client()).login(password=NEW_PASSWORD).status_code == 302


def test_password_change_needs_the_current_password(app, client, auth):
    auth.signup()
    token = csrf_token(client, "/account")
    response = client.post("/account/password", data={"csrf_token": token, "current_password": "wrong horse",
                                                      "new_password": NEW_PASSWORD})
    assert response.status_code == 400
    assert "That is not your current password." in text_of(response)
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 302


def test_log_out_everywhere_else(app, client, auth):
    auth.signup()
    other = app.test_client()
    AuthActions(other).login()
    copied = copy_of(app, session_cookie(client))

    token = csrf_token(client, "/account")
    assert client.post("/account/sessions/end", data={"csrf_token": token}).status_code == 303
    assert client.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 302
    assert copied.get("/dashboard").status_code == 302


def test_login_renews_the_session_and_the_csrf_token(app, client, auth):
    with app.app_context():
        from tests.factories import make_tenant

        make_tenant(email=EMAIL)
    before_token = csrf_token(client, "/login")
    before_cookie = session_cookie(client)
    assert client.post("/login", data={"csrf_token": before_token, "email": EMAIL,
                                       "password": PASSWORD}).status_code == 302
    after_token = csrf_token(client, "/keys")
    assert after_token != before_token
    # A token fixed before login (e.g. planted by an attacker) is refused after it.
    assert client.post("/keys", data={"csrf_token": before_token, "name": "x"}).status_code == 400
    # The pre-login cookie does not carry the login.
    assert copy_of(app, before_cookie).get("/dashboard").status_code == 302


def test_a_session_without_a_version_is_not_logged_in(app, client, auth):
    auth.signup()
    with client.session_transaction() as sess:
        sess["_user_id"] = sess["_user_id"].split(":")[0]
    assert client.get("/dashboard").status_code == 302


# -- throttles -------------------------------------------------------------------------------------------

def wait_out(refused) -> None:
    """Sleep as long as the 429 says."""
    time.sleep(int(refused.headers["Retry-After"]) + 0.2)


def login(client, email, password, **environ):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password},
                       environ_base=environ or {})


@pytest.mark.parametrize("email", [EMAIL, "nobody@acme.example.com"])
def test_login_throttle_per_account_grows_and_is_the_same_for_unknown_emails(app, client, auth, short_throttles,
                                                                             email):
    auth.signup()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    for _ in range(3):
        assert login(client, email, "wrong horse").status_code == 400
    refused = login(client, email, PASSWORD if email == EMAIL else "wrong horse")
    assert refused.status_code == 429
    wait = refused.headers["Retry-After"]
    assert 1 <= int(wait) <= 5
    assert re.search(rf"Too many failed login attempts. Try again in {wait} seconds?\.", text_of(refused))
    # From another address the account is still throttled.
    assert login(client, email, PASSWORD, REMOTE_ADDR="10.0.0.9").status_code == 429

    wait_out(refused)
    # Two more failures reach the second tier: the wait grows to the 60-second window.
    assert login(client, email, "wrong horse").status_code == 400
    assert login(client, email, "wrong horse").status_code == 400
    again = login(client, email, PASSWORD)
    assert again.status_code == 429
    assert 40 <= int(again.headers["Retry-After"]) <= 60


def test_login_succeeds_after_waiting(app, client, auth, short_throttles):
    auth.signup()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    for _ in range(3):
        login(client, EMAIL, "wrong horse")
    refused = login(client, EMAIL, PASSWORD)
    assert refused.status_code == 429
    wait_out(refused)
    assert login(client, EMAIL, PASSWORD).status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_login_throttle_per_address(app, client, short_throttles):
    for n in range(6):
        assert login(client, f"user{n}@acme.example.com", "wrong horse").status_code == 400
    refused = login(client, "user99@acme.example.com", "wrong horse")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed login attempts" in text_of(refused)
    # Another address is not throttled.
    assert login(client, "user99@acme.example.com", "wrong horse", REMOTE_ADDR="10.0.0.9").status_code == 400


def test_successful_logins_do_not_count(app, client, auth, short_throttles):
    auth.signup()
    for _ in range(5):
        client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
        assert login(client, EMAIL, PASSWORD).status_code == 302


def test_signup_throttle_per_address(app, client, short_throttles):
    auth = AuthActions(client)
    for n in range(3):
        assert auth.signup(company=f"Co {n}", email=f"o{n}@co{n}.example.com").status_code == 303
        client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    refused = auth.signup(company="Co 9", email="o9@co9.example.com")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert "Too many signups from your network" in text_of(refused)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "o9@co9.example.com")) is None
    wait_out(refused)
    assert auth.signup(company="Co 9", email="o9@co9.example.com").status_code == 303


def test_default_throttles_allow_no_60_guesses(app, client, auth):
    auth.signup()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    codes = [login(client, EMAIL, f"guess number {n}").status_code for n in range(8)]
    assert codes == [400] * 5 + [429] * 3
    assert login(client, EMAIL, PASSWORD).status_code == 429


def test_trusted_proxy_address_is_the_clients(base_app):
    from saas import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": base_app.config["SQLALCHEMY_DATABASE_URI"],
                      "HOUSEKEEPING": False, "TRUSTED_PROXIES": 1})
    seen = {}

    @app.get("/_addr")
    def addr():
        from flask import request

        seen["addr"] = request.remote_addr
        return ""

    app.test_client().get("/_addr", headers={"X-Forwarded-For": "203.0.113.7"})
    assert seen["addr"] == "203.0.113.7"


# -- password strength -----------------------------------------------------------------------------------

@pytest.mark.parametrize("weak", ["password", "12345678", "qwertyuiop"])
def test_weak_passwords_are_refused_at_signup_with_feedback(app, client, auth, weak):
    response = auth.signup(password=weak)
    assert response.status_code == 400
    page = text_of(response)
    assert re.search(r'id="password-error">[^<]*common', page)
    with app.app_context():
        assert db.session.scalar(select(User)) is None


def test_the_rule_is_shown_before_submitting(client):
    page = text_of(client.get("/signup"))
    assert 'id="password-rule"' in page and "not easy to guess" in page


def test_a_password_made_of_the_email_is_refused(client, auth):
    response = auth.signup(email="johnsmith@acme.example.com", password="johnsmith")
    assert response.status_code == 400
    assert 'id="password-error"' in text_of(response)


def test_weak_password_refused_at_change(app, client, auth):
    auth.signup()
    token = csrf_token(client, "/account")
    response = client.post("/account/password", data={"csrf_token": token, "current_password": PASSWORD,
                                                      "new_password": "password1"})
    assert response.status_code == 400
    assert re.search(r'id="new_password-error">[^<]*common', text_of(response))
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 302


def test_cli_tenant_create_skips_the_strength_rule(runner, app):
    result = runner.invoke(args=["tenants", "create", "--name", "Bench Co", "--email", "bench@bench.example.com",
                                 "--password", "password"])
    assert result.exit_code == 0, result.output


# -- checks of the password inside a session count like logins -----------------------------------------

@pytest.fixture
def account_throttle(app):
    """The login's per-account throttle with a window no test outlasts: three failures, then a wait."""
    saved = app.config["LOGIN_ACCOUNT_LIMITS"]
    app.config["LOGIN_ACCOUNT_LIMITS"] = "3/10 minutes;10/hour"
    yield
    app.config["LOGIN_ACCOUNT_LIMITS"] = saved


def change_password(client, current, new=NEW_PASSWORD):
    token = csrf_token(client, "/account")
    return client.post("/account/password", data={"csrf_token": token, "current_password": current,
                                                  "new_password": new})


def password_is(app, password) -> bool:
    from werkzeug.security import check_password_hash

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == EMAIL))
        matches = check_password_hash(user.password_hash, password)
        db.session.remove()
    return matches


def test_wrong_current_passwords_are_throttled_like_failed_logins(app, client, auth, account_throttle):
    auth.signup()
    for _ in range(3):
        assert change_password(client, "wrong horse").status_code == 400
    # The right password is refused too while throttled, and nothing changes.
    refused = change_password(client, PASSWORD)
    assert refused.status_code == 429
    assert 500 <= int(refused.headers["Retry-After"]) <= 600
    assert re.search(r"Too many wrong passwords\. Try again in 10 minutes\.", text_of(refused))
    assert password_is(app, PASSWORD) and not password_is(app, NEW_PASSWORD)
    # The count is the login's own: the login form is closed to this account for the same wait.
    login_refused = AuthActions(app.test_client()).login(password=PASSWORD)
    assert login_refused.status_code == 429
    assert abs(int(login_refused.headers["Retry-After"]) - int(refused.headers["Retry-After"])) <= 2
    assert client.get("/dashboard").status_code == 200  # the session itself goes on


def test_failed_logins_close_the_current_password_check_too(app, client, auth, account_throttle):
    auth.signup()
    other = app.test_client()
    for _ in range(3):
        assert login(other, EMAIL, "wrong horse").status_code == 400
    refused = change_password(client, PASSWORD)
    assert refused.status_code == 429 and "Too many wrong passwords" in text_of(refused)
    assert password_is(app, PASSWORD)
