"""Two-factor login: enroll, log in with a code or a recovery code (once), the half-login's expiry
and throttle, turning it off, and platform admins sent to enroll."""
from __future__ import annotations

import html
import re
import time

import pyotp
import pytest

from saas.extensions import db
from saas.tenants import services as accounts
from tests.conftest import AuthActions, csrf_token

EMAIL = "owner@acme.example.com"
PASSWORD = "correct horse"


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def secret_on(client) -> str:
    match = re.search(r'id="totp-secret">([A-Z2-7]+)<', text_of(client.get("/account/two-factor")))
    assert match
    return match.group(1)


def enroll(client) -> tuple[str, list[str]]:
    """Turn two-factor on for the logged-in user; returns (secret, recovery codes)."""
    secret = secret_on(client)
    token = csrf_token(client, "/account/two-factor")
    response = client.post("/account/two-factor/enable", data={"csrf_token": token,
                                                               "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", text_of(response))
    return secret, codes


def previous_code(secret: str) -> str:
    """A code still accepted (drift) but for an earlier step than now's, so it is not a replay of now's."""
    return pyotp.TOTP(secret).at(time.time() - 30)


def password_step(client, email=EMAIL, password=PASSWORD):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password})


def code_step(client, code):
    token = csrf_token(client, "/login/code")
    return client.post("/login/code", data={"csrf_token": token, "code": code})


@pytest.fixture
def enrolled(app, client, auth):
    auth.signup()
    secret, codes = enroll(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    return secret, codes


def test_enroll_shows_the_secret_uri_and_ten_recovery_codes_once(app, client, auth):
    auth.signup()
    page = text_of(client.get("/account/two-factor"))
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert f"otpauth://totp/Relay:owner%40acme.example.com?secret={secret}&issuer=Relay" in page
    # The QR code of that URI is in the page itself, as SVG (tests/portal/test_two_factor_browser.py scans it).
    assert re.search(r'<figure id="totp-qr"><svg [^>]*class="totp-qr"', page)
    token = csrf_token(client, "/account/two-factor")
    wrong = client.post("/account/two-factor/enable", data={"csrf_token": token, "code": "000000"})
    assert wrong.status_code == 400 and "That code is not right" in text_of(wrong)
    _, codes = enroll(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    again = text_of(client.get("/account/two-factor"))
    assert not any(code in again for code in codes)
    assert 'id="codes-left">10<' in again
    with app.app_context():
        from saas.tenants.models import RecoveryCode, User

        user = db.session.query(User).one()
        assert user.totp_secret and secret not in user.totp_secret  # kept encrypted
        stored = [row.code_hash for row in db.session.query(RecoveryCode)]
        assert len(stored) == 10 and not set(stored) & set(codes)


def test_login_asks_for_the_code_after_the_password(app, client, enrolled):
    secret, _ = enrolled
    response = password_step(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login/code"
    # Half logged in is not logged in.
    assert client.get("/dashboard").status_code == 302
    wrong = code_step(client, "123456")
    assert wrong.status_code == 400 and "That code is not right" in text_of(wrong)
    assert code_step(client, previous_code(secret)).status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_a_code_works_once(app, client, enrolled):
    secret, _ = enrolled
    code = previous_code(secret)
    password_step(client)
    assert code_step(client, code).status_code == 302
    other = app.test_client()
    password_step(other)
    assert code_step(other, code).status_code == 400


def test_a_recovery_code_works_once(app, client, enrolled):
    _, codes = enrolled
    password_step(client)
    response = code_step(client, codes[0].upper())
    assert response.status_code == 302
    assert "9 are left" in text_of(client.get("/dashboard"))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    password_step(client)
    assert code_step(client, codes[0]).status_code == 400
    assert code_step(client, codes[1]).status_code == 302


def test_the_half_login_expires(app, client, enrolled):
    secret, _ = enrolled
    saved = app.config["TWO_FACTOR_LOGIN_SECONDS"]
    app.config["TWO_FACTOR_LOGIN_SECONDS"] = 1
    try:
        password_step(client)
        time.sleep(1.2)
        response = client.get("/login/code")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
        token = csrf_token(client, "/login")
        assert client.post("/login/code", data={"csrf_token": token,
                                                "code": previous_code(secret)}).status_code == 302
        assert client.get("/dashboard").status_code == 302
    finally:
        app.config["TWO_FACTOR_LOGIN_SECONDS"] = saved


def test_wrong_codes_are_throttled(app, client, enrolled):
    secret, _ = enrolled
    saved = app.config["LOGIN_CODE_LIMITS"]
    app.config["LOGIN_CODE_LIMITS"] = "3/10 seconds"
    try:
        password_step(client)
        for _ in range(3):
            assert code_step(client, "000000").status_code == 400
        refused = code_step(client, previous_code(secret))
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 10
        assert "Too many wrong codes" in text_of(refused)
        time.sleep(int(refused.headers["Retry-After"]) + 0.2)
        assert code_step(client, previous_code(secret)).status_code == 302
    finally:
        app.config["LOGIN_CODE_LIMITS"] = saved


def test_disable_needs_password_and_code(app, client, enrolled):
    secret, _ = enrolled
    password_step(client)
    code_step(client, previous_code(secret))
    token = csrf_token(client, "/account/two-factor")
    bad = client.post("/account/two-factor/disable", data={"csrf_token": token, "password": "wrong horse",
                                                           "code": pyotp.TOTP(secret).now()})
    assert bad.status_code == 400 and "That is not your password." in text_of(bad)
    bad = client.post("/account/two-factor/disable", data={"csrf_token": token, "password": PASSWORD,
                                                           "code": "000000"})
    assert bad.status_code == 400
    ok = client.post("/account/two-factor/disable", data={"csrf_token": token, "password": PASSWORD,
                                                          "code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})
    assert password_step(client).headers["Location"] == "/dashboard"


def test_enrolling_ends_other_sessions(app, client, auth):
    auth.signup()
    other = app.test_client()
    AuthActions(other).login()
    enroll(client)
    assert client.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 302


def test_platform_admin_is_sent_to_enroll(app, client):
    app.config["ADMIN_REQUIRES_TWO_FACTOR"] = True
    try:
        with app.app_context():
            accounts.create_platform_admin("root@ops.example.com", "admin password")
            db.session.remove()
        assert password_step(client, "root@ops.example.com", "admin password").status_code == 302
        for path in ("/admin/", "/admin/plans"):
            response = client.get(path)
            assert response.status_code == 302 and response.headers["Location"] == "/account/two-factor", path
        enroll(client)
        assert client.get("/admin/").status_code == 200
    finally:
        app.config["ADMIN_REQUIRES_TWO_FACTOR"] = False


# -- checks of codes inside a session count like the login's --------------------------------------------

@pytest.fixture
def tight_throttles(app):
    """Three failures of each kind, then a wait no test outlasts."""
    names = ("LOGIN_ACCOUNT_LIMITS", "LOGIN_CODE_LIMITS")
    saved = {name: app.config[name] for name in names}
    app.config.update(LOGIN_ACCOUNT_LIMITS="3/10 minutes", LOGIN_CODE_LIMITS="3/10 minutes")
    yield
    app.config.update(saved)


def logged_in_with_two_factor(client, secret):
    password_step(client)
    assert code_step(client, previous_code(secret)).status_code == 302


def turn_off(client, password, code):
    token = csrf_token(client, "/account/two-factor")
    return client.post("/account/two-factor/disable", data={"csrf_token": token, "password": password,
                                                            "code": code})


def two_factor_on(app) -> bool:
    with app.app_context():
        from saas.tenants.models import User

        on = db.session.query(User).one().totp_enabled_at is not None
        db.session.remove()
    return on


def test_wrong_codes_when_turning_it_off_are_throttled_like_the_login_code_step(app, client, enrolled,
                                                                                tight_throttles):
    secret, codes = enrolled
    logged_in_with_two_factor(client, secret)
    for _ in range(3):
        assert turn_off(client, PASSWORD, "000000").status_code == 400
    # A right code (a recovery code: the TOTP of now was just used) is refused while throttled.
    refused = turn_off(client, PASSWORD, codes[0])
    assert refused.status_code == 429 and 500 <= int(refused.headers["Retry-After"]) <= 600
    assert "Too many wrong passwords or codes. Try again in 10 minutes." in text_of(refused)
    assert two_factor_on(app)
    # One count with the login's code step: logging in elsewhere stops at the code.
    other = app.test_client()
    password_step(other)
    assert code_step(other, codes[1]).status_code == 429


def test_wrong_passwords_when_turning_it_off_count_as_failed_logins(app, client, enrolled, tight_throttles):
    secret, codes = enrolled
    logged_in_with_two_factor(client, secret)
    for _ in range(3):
        wrong = turn_off(client, "wrong horse", codes[0])
        assert wrong.status_code == 400 and "That is not your password." in text_of(wrong)
    refused = turn_off(client, PASSWORD, codes[0])
    assert refused.status_code == 429 and two_factor_on(app)
    assert AuthActions(app.test_client()).login().status_code == 429


# -- a password reset finishes at the code step ---------------------------------------------------------

def reset_through_email(app, client, mailbox, email=EMAIL, password="a brand new password"):
    """Ask for a reset link, open it from the mailbox and set ``password``; returns the form's answer."""
    token = csrf_token(client, "/forgot-password")
    client.post("/forgot-password", data={"csrf_token": token, "email": email})
    assert app.extensions["background"].join()
    link = mailbox.link(email, "Reset your password", "/reset-password/")
    return client.post(link, data={"csrf_token": csrf_token(client, link), "password": password})


def test_a_password_reset_asks_for_the_code_like_a_login(app, client, enrolled, mailbox):
    secret, _ = enrolled
    done = reset_through_email(app, client, mailbox)
    assert done.status_code in (302, 303) and done.headers["Location"] == "/login/code"
    # The mailbox alone logs nobody in.
    assert client.get("/dashboard").status_code == 302
    assert client.get("/account").status_code == 302
    assert "Your password is changed" in text_of(client.get("/login/code"))
    assert code_step(client, previous_code(secret)).status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_a_platform_admins_reset_does_not_open_the_console_without_the_code(app, client, mailbox):
    app.config["ADMIN_REQUIRES_TWO_FACTOR"] = True
    try:
        with app.app_context():
            accounts.create_platform_admin("root@ops.example.com", "admin password")
            db.session.remove()
        password_step(client, "root@ops.example.com", "admin password")
        secret, _ = enroll(client)
        client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})

        done = reset_through_email(app, client, mailbox, "root@ops.example.com", "a new admin password")
        assert done.headers["Location"] == "/login/code"
        for path in ("/admin/", "/admin/plans", "/admin/tenants"):
            response = client.get(path)
            assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path
        assert code_step(client, previous_code(secret)).status_code == 302
        assert client.get("/admin/").status_code == 200
    finally:
        app.config["ADMIN_REQUIRES_TWO_FACTOR"] = False
