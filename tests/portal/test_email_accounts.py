"""Email ownership in the portal: verification at signup, resend throttle, uniform signup, password reset."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.tenants.models import Tenant, User
from saas.timeutil import utcnow
from tests.conftest import csrf_token
from tests.factories import row_counts

CSRF_VALUE = re.compile(r'name="csrf_token"[^>]*value="[^"]+"')
EMAIL = "owner@acme.example.com"
PASSWORD = "correct horse"


def text_of(response) -> str:
    return response.get_data(as_text=True)


def user_row(app, email=EMAIL) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        db.session.expunge_all()
        db.session.remove()
    return user


def logout(client):
    token = csrf_token(client, "/dashboard")
    return client.post("/logout", data={"csrf_token": token})


def settle(app):
    assert app.extensions["background"].join()


# -- verification -------------------------------------------------------------------------------

def press_verify(client, link):
    """The verification page's button, the way a browser presses it (CSRF token from the page)."""
    page = client.get(link)
    assert page.status_code == 200 and "Verify my email address" in text_of(page)
    return client.post(link, data={"csrf_token": csrf_token(client, link)})


def test_opening_the_link_changes_nothing_only_its_button_verifies(app, auth, mailbox):
    # Mail systems' link scanners open every link they see, with or without the signup's cookies.
    auth.signup(email=EMAIL, verify=False)
    settle(app)
    link = mailbox.link(EMAIL, "Verify your email", "/verify-email/")
    scanner = app.test_client()
    for client in (scanner, scanner, auth.client):
        page = client.get(link)
        assert page.status_code == 200
        assert "Verify my email address" in text_of(page) and EMAIL in text_of(page)
        assert page.headers.get("Set-Cookie", "").find("remember_token") == -1
    assert user_row(app).email_verified_at is None
    assert scanner.get("/dashboard").status_code == 302
    assert auth.client.get("/dashboard").status_code == 302
    # A POST without the page's CSRF token (a scanner replaying the form) does nothing either.
    assert scanner.post(link).status_code == 400
    assert auth.client.post(link).status_code == 400
    assert user_row(app).email_verified_at is None


def test_the_button_verifies_and_logs_in_the_browser_that_signed_up_once(app, auth, mailbox):
    response = auth.signup(email=EMAIL, verify=False)
    assert response.status_code == 303 and response.headers["Location"] == "/signup/check-email"
    assert auth.client.get("/dashboard").status_code == 302  # not logged in yet
    settle(app)
    link = mailbox.link(EMAIL, "Verify your email", "/verify-email/")

    first = press_verify(auth.client, link)
    assert first.status_code == 303 and first.headers["Location"] == "/dashboard"
    verified_at = user_row(app).email_verified_at
    assert verified_at is not None and user_row(app).last_login_at is not None
    dashboard = text_of(auth.client.get("/dashboard"))
    assert "verify-email-banner" not in dashboard and "Your email address is verified" in dashboard

    # Again, logged out: still verified (idempotent), and it logs nobody in a second time.
    logout(auth.client)
    again = auth.client.get(link)
    assert again.status_code == 200 and "already verified" in text_of(again)
    assert "Verify my email address" not in text_of(again)
    pressed = auth.client.post(link, data={"csrf_token": csrf_token(auth.client, "/login")})
    assert pressed.status_code == 303 and pressed.headers["Location"] == "/login"
    assert auth.client.get("/dashboard").status_code == 302
    assert user_row(app).email_verified_at == verified_at


def test_the_button_in_another_browser_verifies_and_asks_to_log_in(app, auth, mailbox):
    auth.signup(email=EMAIL, verify=False)
    settle(app)
    link = mailbox.link(EMAIL, "Verify your email", "/verify-email/")
    elsewhere = app.test_client()  # the phone's mail app, say: it never saw the password

    pressed = press_verify(elsewhere, link)
    assert pressed.status_code == 303 and pressed.headers["Location"] == "/login"
    assert user_row(app).email_verified_at is not None
    assert user_row(app).last_login_at is None
    assert elsewhere.get("/dashboard").status_code == 302
    assert "Your email address is verified. Log in to continue." in text_of(elsewhere.get("/login"))
    # The browser that signed up is not logged in by someone else's press either.
    assert auth.client.get("/dashboard").status_code == 302


def test_the_owner_logged_in_before_verifying_stays_logged_in(app, auth, mailbox):
    from tests.conftest import AuthActions

    AuthActions(app.test_client()).signup(email=EMAIL, verify=False)
    settle(app)
    link = mailbox.link(EMAIL, "Verify your email", "/verify-email/")
    assert auth.login().status_code == 302
    pressed = press_verify(auth.client, link)
    assert pressed.status_code == 303 and pressed.headers["Location"] == "/dashboard"
    assert user_row(app).email_verified_at is not None


def test_an_unverified_user_who_logs_in_sees_the_banner_with_resend(app, auth, mailbox):
    auth.signup(email=EMAIL, verify=False)
    assert auth.login().status_code == 302
    page = text_of(auth.client.get("/dashboard"))
    assert 'id="verify-email-banner"' in page and "Resend verification email" in page


def test_an_expired_link_shows_a_clear_page_with_the_way_to_resend(app, auth, mailbox):
    auth.signup(email=EMAIL, verify=False)
    settle(app)
    link = mailbox.link(EMAIL, "Verify your email", "/verify-email/")
    saved = app.config["EMAIL_TOKEN_MAX_AGE"]
    app.config["EMAIL_TOKEN_MAX_AGE"] = 1
    try:
        time.sleep(2.1)
        response = auth.client.get(link)
    finally:
        app.config["EMAIL_TOKEN_MAX_AGE"] = saved
    assert response.status_code == 400
    assert "This link has expired" in text_of(response) and "Log in" in text_of(response)
    assert user_row(app).email_verified_at is None
    auth.login()
    response = auth.client.get(link.replace("/verify-email/", "/verify-email/x"))  # tampered, logged in
    assert response.status_code == 400
    assert "This link is not valid" in text_of(response)
    assert "Send me a new verification link" in text_of(response)


@pytest.mark.parametrize("change", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
    lambda t: "e30" + t[3:],  # payload
    lambda t: "",
    lambda t: "x" * 5000,
])
def test_a_tampered_link_verifies_nothing(app, auth, mailbox, change):
    auth.signup(email=EMAIL, verify=False)
    settle(app)
    token = mailbox.link(EMAIL, "Verify your email", "/verify-email/").rsplit("/", 1)[1]
    response = auth.client.get("/verify-email/" + change(token))
    # No token, or one longer than any path parameter may be: no such page.
    assert response.status_code == (404 if change(token) == "" or len(change(token)) > 200 else 400)
    assert user_row(app).email_verified_at is None
    assert auth.client.get("/dashboard").status_code == 302


def test_another_users_link_opened_while_logged_in_is_refused(app, client, auth, mailbox):
    from tests.conftest import AuthActions

    auth.signup(email=EMAIL, verify=False)
    settle(app)
    link = mailbox.link(EMAIL, "Verify your email", "/verify-email/")
    other = AuthActions(app.test_client())
    assert other.signup(company="Other Co", email="boss@other.example.com").status_code == 303

    response = other.client.get(link)
    assert response.status_code == 403
    assert "This link is for another account" in text_of(response)
    pressed = other.client.post(link, data={"csrf_token": csrf_token(other.client, "/dashboard")})
    assert pressed.status_code == 403
    assert user_row(app).email_verified_at is None
    # Still logged in as itself.
    assert other.client.get("/dashboard").status_code == 200


def test_resend_is_throttled_to_once_a_minute_per_user(app, auth, mailbox):
    auth.signup(email=EMAIL, verify=False)
    auth.login()

    def resend():
        token = csrf_token(auth.client, "/dashboard")
        response = auth.client.post("/verify-email/resend", data={"csrf_token": token})
        assert response.status_code == 303
        settle(app)
        return text_of(auth.client.get("/dashboard"))

    # The signup's email was sent seconds ago: too soon.
    assert "less than a minute ago" in resend()
    assert len(mailbox.to(EMAIL, "Verify your email")) == 1
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == EMAIL))
        user.verification_sent_at = utcnow() - timedelta(seconds=61)
        db.session.commit()
        db.session.remove()
    assert "We sent a new verification link" in resend()
    assert len(mailbox.to(EMAIL, "Verify your email")) == 2
    assert "less than a minute ago" in resend()
    assert len(mailbox.to(EMAIL, "Verify your email")) == 2
    # The first link still works: a resend does not cancel it.
    first = mailbox.to(EMAIL, "Verify your email")[0]
    assert press_verify(auth.client, re.search(r"http://\S+", mailbox.text(first)).group(0)).status_code == 303
    assert user_row(app).email_verified_at is not None


def test_the_cli_creates_verified_owners(app, runner):
    result = runner.invoke(args=["tenants", "create", "--name", "Bench Co", "--email", "bench@example.com",
                                 "--password", "correct horse"])
    assert result.exit_code == 0, result.output
    assert user_row(app, "bench@example.com").email_verified_at is not None


# -- signup answers the same for a registered address ------------------------------------------

def test_signup_with_a_registered_email_answers_like_a_new_one_and_warns_the_owner(app, auth, mailbox):
    from tests.conftest import AuthActions

    assert auth.signup(email=EMAIL).status_code == 303
    logout(auth.client)
    settle(app)
    mailbox.reset()
    before = row_counts(app)

    stranger = AuthActions(app.test_client())
    taken = stranger.signup(company="Other Co", email="Owner@ACME.example.com", verify=False)
    fresh = AuthActions(app.test_client()).signup(company="New Co", email="new@new.example.com", verify=False)

    assert (taken.status_code, taken.headers["Location"]) == (fresh.status_code, fresh.headers["Location"]) \
        == (303, "/signup/check-email")
    assert stranger.client.get("/dashboard").status_code == 302
    # The same page, naming the address typed in either case.
    taken_page = text_of(stranger.client.get("/signup/check-email"))
    assert "Check your email" in taken_page and f"<strong>{EMAIL}</strong>" in taken_page
    with app.app_context():
        assert db.session.scalar(select(Tenant.id).where(Tenant.name == "Other Co")) is None
        db.session.remove()
    after = row_counts(app)
    assert after["tenants"] == before["tenants"] + 1  # only New Co
    settle(app)
    [warning] = mailbox.to(EMAIL)
    assert warning["Subject"] == "Someone tried to sign up with your address"
    body = mailbox.text(warning)
    assert "/login" in body and "/forgot-password" in body
    assert mailbox.to("new@new.example.com", "Verify your email")
    # The existing owner's password and state are untouched.
    assert auth.login().status_code == 302


# -- password reset -----------------------------------------------------------------------------

def forgot(client, email):
    token = csrf_token(client, "/forgot-password")
    return client.post("/forgot-password", data={"csrf_token": token, "email": email}, follow_redirects=True)


def set_password(client, link, password):
    token = csrf_token(client, link)
    return client.post(link, data={"csrf_token": token, "password": password})


def test_login_offers_forgot_password(client):
    assert 'href="/forgot-password"' in text_of(client.get("/login"))


def test_reset_answers_the_same_for_known_and_unknown_addresses(app, auth, mailbox):
    auth.signup(email=EMAIL)
    logout(auth.client)
    settle(app)
    mailbox.reset()

    known = forgot(app.test_client(), EMAIL)
    unknown = forgot(app.test_client(), "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.request.path == unknown.request.path == "/login"
    assert CSRF_VALUE.sub("", text_of(known)) == CSRF_VALUE.sub("", text_of(unknown))
    assert "If an account exists for that address, we sent a link" in text_of(known)
    settle(app)
    assert [m["To"] for m in mailbox.messages] == [EMAIL]


def test_reset_link_sets_the_password_logs_in_and_works_once(app, auth, mailbox):
    auth.signup(email=EMAIL)
    logout(auth.client)
    forgot(auth.client, EMAIL)
    settle(app)
    link = mailbox.link(EMAIL, "Reset your password", "/reset-password/")

    assert auth.client.get(link).status_code == 200
    short = set_password(auth.client, link, "short")
    assert short.status_code == 400 and "between 8 and 200" in text_of(short)
    done = set_password(auth.client, link, "a brand new password")
    assert done.status_code == 303 and done.headers["Location"] == "/dashboard"
    assert auth.client.get("/dashboard").status_code == 200
    logout(auth.client)
    assert auth.login(password=PASSWORD).status_code == 400  # the old one no longer works
    assert auth.login(password="a brand new password").status_code == 302
    logout(auth.client)

    again = auth.client.get(link)
    assert again.status_code == 400 and "This link was already used" in text_of(again)
    token = csrf_token(auth.client, "/forgot-password")
    posted = auth.client.post(link, data={"csrf_token": token, "password": "yet another password"})
    assert posted.status_code == 400 and "already used" in text_of(posted)
    assert auth.login(password="a brand new password").status_code == 302


def test_opening_a_reset_link_changes_nothing(app, auth, mailbox):
    # A link scanner's GETs, with and without the browser's cookies: the form, and nothing else.
    auth.signup(email=EMAIL, verify=False)
    forgot(auth.client, EMAIL)
    settle(app)
    link = mailbox.link(EMAIL, "Reset your password", "/reset-password/")
    before = user_row(app)
    for client in (app.test_client(), app.test_client(), auth.client):
        page = client.get(link)
        assert page.status_code == 200 and "Choose a new password" in text_of(page)
        assert client.get("/dashboard").status_code == 302
    after = user_row(app)
    assert (after.password_hash, after.email_verified_at, after.session_version) == \
        (before.password_hash, None, before.session_version)
    # The link still works, once.
    assert set_password(auth.client, link, "a brand new password").status_code == 303


def test_reset_link_dies_when_the_password_changes_another_way(app, auth, mailbox):
    auth.signup(email=EMAIL)
    logout(auth.client)
    forgot(auth.client, EMAIL)
    forgot(auth.client, EMAIL)
    settle(app)
    links = [re.search(r"http://\S+/reset-password/\S+", mailbox.text(m)).group(0)
             for m in mailbox.to(EMAIL, "Reset your password")]
    assert len(links) == 2
    assert set_password(auth.client, links[1].replace("http://localhost", ""), "a brand new password").status_code \
        == 303
    response = auth.client.get(links[0].replace("http://localhost", ""))
    assert response.status_code == 400 and "already used" in text_of(response)


def test_an_expired_or_tampered_reset_link_is_refused_with_the_way_to_ask_again(app, auth, mailbox):
    auth.signup(email=EMAIL)
    logout(auth.client)
    forgot(auth.client, EMAIL)
    settle(app)
    link = mailbox.link(EMAIL, "Reset your password", "/reset-password/")
    tampered = auth.client.get(link[:-3] + "abc")
    assert tampered.status_code == 400 and "This link is not valid" in text_of(tampered)
    saved = app.config["PASSWORD_RESET_MAX_AGE"]
    app.config["PASSWORD_RESET_MAX_AGE"] = 1
    try:
        time.sleep(2.1)
        expired = auth.client.get(link)
    finally:
        app.config["PASSWORD_RESET_MAX_AGE"] = saved
    assert expired.status_code == 400 and "This link has expired" in text_of(expired)
    assert 'href="/forgot-password"' in text_of(expired)
    assert auth.login(password=PASSWORD).status_code == 302


def test_reset_through_email_also_verifies_the_address(app, auth, mailbox):
    auth.signup(email=EMAIL, verify=False)
    forgot(auth.client, EMAIL)
    settle(app)
    assert set_password(auth.client, mailbox.link(EMAIL, "Reset your password", "/reset-password/"),
                        "a brand new password").status_code == 303
    assert user_row(app).email_verified_at is not None


def test_over_long_and_nul_inputs_are_form_errors_not_500s(app, client, mailbox):
    token = csrf_token(client, "/forgot-password")
    assert client.post("/forgot-password", data={"csrf_token": token, "email": "a" * 300 + "@x.com"}).status_code \
        == 400
    assert forgot(client, "nul\x00@example.com").status_code == 200
    settle(app)
    assert mailbox.messages == []
