"""The tenant portal through the test client, with CSRF protection on as in production."""
from __future__ import annotations

import hashlib
import html
import re
from datetime import datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from saas.billing.models import Plan, Subscription
from saas.extensions import db
from saas.messaging.models import MODE_SANDBOX, PhoneNumber
from saas.tenants import services as accounts
from saas.tenants.models import ROLE_OWNER, ApiKey, Tenant, User
from saas.timeutil import utcnow
from tests.conftest import csrf_token
from tests.factories import row_counts, sender, settle

EMAIL = "owner@acme.example.com"
PASSWORD = "correct horse"

NEW_KEY = re.compile(r'<p class="secret" id="new-key-secret">([^<]+)</p>')
REVOKE_ACTION = re.compile(r'action="/keys/(\d+)/revoke"')


# -- helpers -----------------------------------------------------------------

def text_of(response) -> str:
    return response.get_data(as_text=True)


def field_errors(page: str) -> dict[str, str]:
    """{field id: error text} for every error the form macro printed under a field."""
    return {m.group(1): html.unescape(m.group(2)) for m in
            re.finditer(r'<small class="field-error" id="([a-z_]+)-error">([^<]*)</small>', page)}


def logout(client):
    return client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboard")})


def new_key_secret(response) -> str:
    match = NEW_KEY.search(text_of(response))
    assert match, "the new key is not on the page"
    return html.unescape(match.group(1))


def key_rows(page: str) -> list[list[str]]:
    """The cells (tags stripped) of each row of the API key table."""
    table = re.search(r'<table id="key-list">(.*?)</table>', page, re.S)
    assert table, "no key table on the page"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        rows.append(cells)
    return rows


def usage(client, key):
    return client.get("/api/v1/usage", headers={"Authorization": f"Bearer {key}"})


def send_text(client, key, phone_number_id, body="Hello from the portal test", to="15551234567"):
    return client.post(f"/v23.0/{phone_number_id}/messages",
                       json={"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}},
                       headers={"Authorization": f"Bearer {key}"})


def shown_phone_number_id(client) -> str:
    """The sandbox phone_number_id the dashboard shows."""
    match = re.search(r'<code class="phone-number-id">(\d+)</code>', text_of(client.get("/dashboard")))
    assert match, "no phone_number_id on the dashboard"
    return match.group(1)


@pytest.fixture
def owner(auth):
    """A signed-up tenant owner, logged in."""
    response = auth.signup()
    assert response.status_code == 303
    return auth


# -- signup --------------------------------------------------------------------

def test_signup_creates_tenant_owner_free_subscription_and_sandbox_number(app, auth):
    response = auth.signup(company="Acme Ltd", email=EMAIL)
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == EMAIL))
        assert user is not None and user.role == ROLE_OWNER and not user.is_platform_admin
        assert user.password_hash != PASSWORD
        tenant = user.tenant
        assert tenant.name == "Acme Ltd" and tenant.slug == "acme-ltd"
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
        assert db.session.get(Plan, subscription.plan_id).code == "free"
        assert subscription.status == "active"
        numbers = list(db.session.scalars(select(PhoneNumber).where(PhoneNumber.tenant_id == tenant.id)))
        assert [n.mode for n in numbers] == [MODE_SANDBOX]
        phone_number_id = numbers[0].phone_number_id
        db.session.remove()

    dashboard = auth.client.get("/dashboard")
    assert dashboard.status_code == 200
    page = text_of(dashboard)
    assert '<strong id="plan-name">Free</strong>' in page
    assert f'<code class="phone-number-id">{phone_number_id}</code>' in page
    assert "Your sandbox number is ready" in page  # the welcome flash


def test_signup_lands_on_check_your_email_and_the_emailed_link_opens_the_dashboard(auth):
    token = csrf_token(auth.client, "/signup")
    response = auth.client.post("/signup", data={"csrf_token": token, "company": "Acme Ltd", "email": EMAIL,
                                                 "password": PASSWORD}, follow_redirects=True)
    assert response.status_code == 200
    assert response.request.path == "/signup/check-email"
    assert "Check your email" in text_of(response)
    # Not logged in until the link is opened.
    assert auth.client.get("/dashboard").status_code == 302
    response = auth.verify(EMAIL)
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard"
    assert '<strong id="plan-name">Free</strong>' in text_of(auth.client.get("/dashboard"))


@pytest.mark.parametrize("fields, field, message", [
    ({"email": "not-an-email"}, "email", "Invalid email address."),
    ({"email": "owner@acme"}, "email", "Invalid email address."),
    ({"password": "short"}, "password", "Field must be between 8 and 200 characters long."),
    ({"company": ""}, "company", "This field is required."),
    ({"company": "   "}, "company", "This field is required."),
    ({"company": "x" * 201}, "company", "Field cannot be longer than 200 characters."),
])
def test_signup_field_error_is_shown_next_to_the_field_and_writes_nothing(app, auth, fields, field, message):
    before = row_counts(app)
    data = {"company": "Acme Ltd", "email": EMAIL, "password": PASSWORD, **fields}
    response = auth.signup(**data)
    assert response.status_code == 400
    page = text_of(response)
    assert field_errors(page) == {field: message}
    # The field itself is marked invalid and points at its error.
    field_input = re.search(rf'<input[^>]*\bid="{field}"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in field_input
    assert f'aria-describedby="{field}-error"' in field_input
    assert page.count('aria-invalid="true"') == 1
    assert row_counts(app) == before
    # Nobody got logged in.
    assert auth.client.get("/dashboard").status_code == 302


def test_signup_keeps_what_was_typed_but_never_the_password(auth):
    response = auth.signup(company="Acme Ltd", email="not-an-email", password="s3cret-typed")
    page = text_of(response)
    assert 'value="Acme Ltd"' in page
    assert 'value="not-an-email"' in page
    assert "s3cret-typed" not in page


# -- login / logout --------------------------------------------------------------

def _normalised_login_page(response, email):
    page = text_of(response)
    page = re.sub(r'<input[^>]*name="csrf_token"[^>]*>', "CSRF", page)
    return page.replace(email, "EMAIL")


def test_wrong_password_and_unknown_email_get_the_same_generic_message(auth):
    auth.signup()
    logout(auth.client)

    wrong_password = auth.login(email=EMAIL, password="wrong horse battery")
    unknown_email = auth.login(email="nobody@acme.example.com", password=PASSWORD)

    for response in (wrong_password, unknown_email):
        assert response.status_code == 400
        page = text_of(response)
        assert '<p class="form-error" role="alert" id="login-error">Invalid email or password.</p>' in page
        assert field_errors(page) == {}
        assert 'aria-invalid' not in page
        for telltale in ("no account", "not found", "not registered", "incorrect password", "wrong password"):
            assert telltale not in page.lower()
    # Apart from what the user typed, the two pages are the same.
    assert _normalised_login_page(wrong_password, EMAIL) == \
        _normalised_login_page(unknown_email, "nobody@acme.example.com")
    assert auth.client.get("/dashboard").status_code == 302


def test_login_with_a_malformed_email_gets_the_same_generic_message(auth):
    response = auth.login(email="not-an-email", password=PASSWORD)
    assert response.status_code == 400
    assert "Invalid email or password." in text_of(response)
    assert field_errors(text_of(response)) == {}


def test_login_with_correct_credentials_lands_on_the_dashboard(auth):
    auth.signup()
    logout(auth.client)
    response = auth.login(email="  OWNER@Acme.Example.com ", password=PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert auth.client.get("/dashboard").status_code == 200


def test_logout_ends_the_session(owner):
    client = owner.client
    assert client.get("/dashboard").status_code == 200
    response = logout(owner.client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    after = client.get("/dashboard")
    assert after.status_code == 302
    assert after.headers["Location"].startswith("/login")


def test_logout_by_get_is_not_allowed_and_keeps_the_session(owner):
    assert owner.client.get("/logout").status_code == 405
    assert owner.client.get("/dashboard").status_code == 200


@pytest.mark.parametrize("path", ["/logout", "/login", "/signup", "/keys", "/keys/1/revoke"])
def test_post_without_csrf_token_is_refused_with_400(app, owner, path):
    before = row_counts(app)
    response = owner.client.post(path, data={"company": "Evil Co", "email": "evil@evil.example.com",
                                             "password": PASSWORD, "name": "sneaky"})
    assert response.status_code == 400
    assert row_counts(app) == before
    # The refused request changed nothing: the session is still there.
    assert owner.client.get("/dashboard").status_code == 200


def test_post_with_a_forged_csrf_token_is_refused_with_400(owner):
    response = owner.client.post("/logout", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert owner.client.get("/dashboard").status_code == 200


@pytest.mark.parametrize("path", ["/dashboard", "/keys", "/billing"])
def test_tenant_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=%2F{path.lstrip('/')}"


def test_logged_in_user_visiting_index_goes_to_dashboard(owner):
    response = owner.client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"


# -- API keys --------------------------------------------------------------------

def test_new_key_is_shown_exactly_once(owner):
    response = owner.create_key("Production")
    assert response.status_code == 201
    secret = new_key_secret(response)
    assert secret.startswith("wsk_")

    again = owner.client.get("/keys")
    assert again.status_code == 200
    assert secret not in text_of(again)
    assert 'id="new-key"' not in text_of(again)
    assert secret not in text_of(owner.client.get("/dashboard"))


def test_database_keeps_only_the_sha256_of_the_key(app, owner):
    secret = new_key_secret(owner.create_key("Production"))
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret.startswith(key.prefix)
        assert key.prefix != secret
        # The full key is in no column of any table.
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(table.select()):
                for value in row:
                    assert secret not in str(value), f"the key is stored in {table.name}"
        db.session.remove()


def test_key_list_shows_prefix_name_created_and_last_used(app, owner):
    before = utcnow().replace(second=0, microsecond=0)
    secret = new_key_secret(owner.create_key("Production"))
    with app.app_context():
        prefix = db.session.scalar(select(ApiKey.prefix))
        db.session.remove()

    rows = key_rows(text_of(owner.client.get("/keys")))
    assert len(rows) == 1
    name, shown_key, created, last_used, status, _ = rows[0]
    assert name == "Production"
    assert shown_key == f"{prefix}…"
    assert secret.startswith(prefix) and len(prefix) < len(secret) // 2
    created_at = datetime.strptime(created, "%Y-%m-%d %H:%M")
    assert before <= created_at <= utcnow()
    assert last_used == "never"
    assert status == "active"

    assert usage(owner.client, secret).status_code == 200
    settle(owner.client.application)  # last use is recorded after the response
    rows = key_rows(text_of(owner.client.get("/keys")))
    last_used = rows[0][3]
    assert last_used != "never"
    used_at = datetime.strptime(last_used, "%Y-%m-%d %H:%M")
    assert created_at <= used_at <= utcnow()


def test_key_without_a_name_is_called_default(owner):
    owner.create_key("")
    assert key_rows(text_of(owner.client.get("/keys")))[0][0] == "Default"


def test_key_name_too_long_is_refused_on_the_name_field(app, owner):
    response = owner.create_key("k" * 101)
    assert response.status_code == 400
    assert field_errors(text_of(response)) == {"name": "Field cannot be longer than 100 characters."}
    assert row_counts(app)["api_keys"] == 0


def test_revoked_key_gets_401_from_the_api(owner):
    secret = new_key_secret(owner.create_key("Production"))
    assert usage(owner.client, secret).status_code == 200
    key_id = REVOKE_ACTION.search(text_of(owner.client.get("/keys"))).group(1)

    token = csrf_token(owner.client, "/keys")
    response = owner.client.post(f"/keys/{key_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/keys"

    refused = usage(owner.client, secret)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthenticated"
    row = key_rows(text_of(owner.client.get("/keys")))[0]
    assert row[4] == "revoked"
    assert not REVOKE_ACTION.search(text_of(owner.client.get("/keys")))


def test_revoking_another_tenants_key_gives_404_and_leaves_it_working(app, owner):
    other = sender(owner.client)
    with app.app_context():
        other_key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == other.tenant_id))
        db.session.remove()

    token = csrf_token(owner.client, "/keys")
    response = owner.client.post(f"/keys/{other_key_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404

    assert other.get("/api/v1/usage").status_code == 200
    with app.app_context():
        assert db.session.get(ApiKey, other_key_id).revoked_at is None
        db.session.remove()


@pytest.mark.parametrize("key_id", ["999999", "abc"])
def test_revoking_a_key_that_does_not_exist_gives_404(owner, key_id):
    token = csrf_token(owner.client, "/keys")
    assert owner.client.post(f"/keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 404


def test_another_tenants_keys_are_not_listed(owner):
    other = sender(owner.client)
    page = text_of(owner.client.get("/keys"))
    assert other.key[:12] not in page
    assert key_rows(page) == [["No keys yet."]]


# -- dashboard, billing, admin -------------------------------------------------------

def test_dashboard_lists_recent_messages_and_usage_after_an_api_send(app, owner):
    empty = text_of(owner.client.get("/dashboard"))
    assert 'id="no-messages"' in empty
    assert '<strong id="usage-used">0</strong>' in empty

    created = owner.create_key("Production")
    secret = new_key_secret(created)
    phone_number_id = shown_phone_number_id(owner.client)
    # The page's curl example is for this number and key.
    assert f"/v23.0/{phone_number_id}/messages" in text_of(created)
    sent = send_text(owner.client, secret, phone_number_id, body="Hello from the portal test")
    assert sent.status_code == 200, sent.get_json()

    page = text_of(owner.client.get("/dashboard"))
    table = re.search(r'<table id="recent-messages">(.*?)</table>', page, re.S)
    assert table, "no recent messages table"
    assert "15551234567" in table.group(1)
    assert "Hello from the portal test" in table.group(1)
    assert '<strong id="usage-used">1</strong>' in page
    assert '<strong id="usage-count">1</strong>' in page
    assert 'id="no-messages"' not in page


def test_dashboard_shows_no_messages_of_another_tenant(app, owner):
    other = sender(owner.client)
    assert other.send(body="someone else's secret").status_code == 200
    page = text_of(owner.client.get("/dashboard"))
    assert "someone else" not in page
    assert 'id="no-messages"' in page
    assert '<strong id="usage-used">0</strong>' in page


def test_billing_page_says_payment_is_not_configured_without_stripe(app, owner):
    assert not app.config.get("STRIPE_SECRET_KEY")
    response = owner.client.get("/billing")
    assert response.status_code == 200
    page = text_of(response)
    assert 'id="billing-not-configured"' in page
    assert "Online payment is not configured" in page
    for name in ("Free", "Starter", "Pro", "Enterprise"):
        assert f"<strong>{name}</strong>" in page
    # The tenant's own plan is the one marked current.
    assert re.findall(r'<article class="current" id="plan-([a-z]+)">', page) == ["free"]


def test_admin_console_is_404_for_a_tenant_user(owner):
    response = owner.client.get("/admin/")
    assert response.status_code == 404
    assert "Platform admin" not in text_of(response)


def test_admin_console_requires_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_platform_admin_can_open_the_admin_console(app, auth):
    auth.signup(company="Acme Ltd")
    logout(auth.client)
    with app.app_context():
        accounts.create_platform_admin("root@ops.example.com", "admin password")
        db.session.remove()

    assert auth.login(email="root@ops.example.com", password="admin password").status_code == 302
    response = auth.client.get("/admin/")
    assert response.status_code == 200
    page = text_of(response)
    assert "<h1>Platform admin</h1>" in page
    assert "acme-ltd" in page
    # An admin outside every tenant is sent to the console from tenant pages.
    dashboard = auth.client.get("/dashboard")
    assert dashboard.status_code == 302
    assert dashboard.headers["Location"] == "/admin/"


# -- redirects and headers ---------------------------------------------------------------

def login_with_next(auth, next_value):
    path = "/login?" + urlencode({"next": next_value})
    token = csrf_token(auth.client, path)
    return auth.client.post(path, data={"csrf_token": token, "email": EMAIL, "password": PASSWORD})


@pytest.mark.parametrize("target", [
    "https://evil.example.com",
    "//evil.example.com",
    "http://evil.example.com/dashboard",
    "javascript:alert(1)",
    "evil.example.com",
])
def test_login_next_refuses_an_external_url(auth, target):
    auth.signup()
    logout(auth.client)
    response = login_with_next(auth, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("target", ["/\\evil.example.com", "/\\/evil.example.com", "\\\\evil.example.com",
                                    "/\t/evil.example.com", "/\n/evil.example.com", "https:/evil.example.com"])
def test_login_next_never_redirects_to_a_url_a_browser_would_read_as_another_host(auth, target):
    r"""Browsers read a backslash as a slash and drop tabs and newlines, so
    '/\host' or '/<tab>/host' would become '//host' if sent on as they are."""
    auth.signup()
    logout(auth.client)
    response = login_with_next(auth, target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//")
    assert not re.search(r"[\\\t\r\n]", location)
    assert "evil.example.com" not in location or location.startswith("/%5C")


def test_login_next_keeps_a_local_path(auth):
    auth.signup()
    logout(auth.client)
    response = login_with_next(auth, "/keys")
    assert response.status_code == 302
    assert response.headers["Location"] == "/keys"


@pytest.mark.parametrize("path, status", [
    ("/", 200), ("/login", 200), ("/signup", 200), ("/no-such-page", 404), ("/dashboard", 302),
])
def test_anonymous_html_responses_carry_csp_and_request_id(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])


def test_logged_in_html_responses_carry_csp_and_request_id(owner):
    responses = [owner.client.get(path) for path in ("/dashboard", "/keys", "/billing", "/admin/")]
    responses.append(owner.create_key("Production"))
    from tests.conftest import AuthActions

    # A 400 form page (signup, so from a browser that is not logged in).
    responses.append(AuthActions(owner.client.application.test_client()).signup(email="bad"))
    ids = set()
    for response in responses:
        assert response.mimetype == "text/html"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert response.headers["X-Request-Id"]
        ids.add(response.headers["X-Request-Id"])
    assert len(ids) == len(responses), "request ids are not unique"
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 201, 400]


def test_a_valid_incoming_request_id_is_echoed(client):
    response = client.get("/login", headers={"X-Request-Id": "trace-12345678"})
    assert response.headers["X-Request-Id"] == "trace-12345678"
