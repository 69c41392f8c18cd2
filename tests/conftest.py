"""One app per database for the session; a clean database for every test.

Every test runs on SQLite. With TEST_DATABASE_URL set, every test that uses
the app runs a second time on PostgreSQL. The schema is built by the real
Alembic migrations. Tests are isolated by emptying the tables afterwards
rather than by a rolled-back outer transaction: the services commit their own
transactions and the concurrency tests need real commits on real connections,
so every test exercises the same transaction handling production does.
"""
from __future__ import annotations

import os
import re

import pytest
from cryptography.fernet import Fernet

# Settings the app would otherwise write into instance/ for the embedded mode.
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("TOKEN_ENCRYPTION_KEY", Fernet.generate_key().decode())
for name in ("REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "DATABASE_URL", "APP_ENV", "MAIL_URL"):
    os.environ.pop(name, None)

from sqlalchemy import text  # noqa: E402

from saas import create_app  # noqa: E402
from saas.config import database_url  # noqa: E402
from saas.extensions import db  # noqa: E402

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def mail_server():
    """The SMTP sink every test app sends its email to (tests/mail_sink.py)."""
    from tests.mail_sink import Mailbox

    global MAILBOX
    MAILBOX = Mailbox().start()
    yield MAILBOX
    MAILBOX.stop()


MAILBOX = None


@pytest.fixture
def mailbox(app, mail_server):
    """The SMTP sink, emptied; ``mailbox.to(address, subject)``, ``mailbox.link(...)``, ``fail_next(n)``."""
    mail_server.reset()
    yield mail_server


def worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets a PostgreSQL database of its own (``<name>_gw0``...), created on
    first use beside the one TEST_DATABASE_URL names; without xdist the URL is used as it is."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    target = make_url(url)
    name = f"{target.database}_{worker}"
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return target.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def base_app(backend, tmp_path_factory, mail_server):
    if backend == "sqlite":
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")
    else:
        url = worker_database(database_url(os.environ["TEST_DATABASE_URL"], ""))
    # Housekeeping (roll-up, recovery) runs when a test calls it, never behind its back.
    # WhatsApp's pair rate is off: many tests send bursts to one contact; tests/messaging/outbound/test_rules.py
    # turns it on (fixture pair_rate) to prove it.
    # Admins' two-factor rule is off: the admin tests log in with a password; tests/portal/test_two_factor.py
    # turns it on to prove it.
    # A refusal past a plan's limit is answered at once; tests/api/test_rate_limits.py proves the pause.
    # A request's domain events are delivered before it answers, so a test reads what consumers wrote at once;
    # tests/test_events.py (fixture in_background) proves the deliverer thread the web processes use.
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SERVER_NAME": None,
                      "HOUSEKEEPING": False, "WHATSAPP_PAIR_RATE_BURST": 0, "ADMIN_REQUIRES_TWO_FACTOR": False,
                      # `flask broadcasts run` invoked in the test process leaves its priority alone and
                      # never pauses for a busy machine or for others at work in the database.
                      "BROADCAST_WORKER_NICE": 0, "BROADCAST_YIELD_SHARE": 0, "BROADCAST_BUSY_SHARE": 1,
                      "RATE_LIMIT_PAUSE_SECONDS": 0, "EVENTS_IN_BACKGROUND": False,
                      # The inbox's live streams end quickly (tests/inbox/test_live.py reads them to the end).
                      "INBOX_STREAM_SECONDS": 0.3, "INBOX_POLL_SECONDS": 0.05,
                      "MAIL_URL": mail_server.url, "MAIL_FROM": "Relay <no-reply@relay.example.com>",
                      "MAIL_RETRY_SECONDS": 0.01, "MAIL_TIMEOUT_SECONDS": 5.0,
                      "ACCEPT_JOURNAL_DIR": str(tmp_path_factory.mktemp("accept-journal"))})
    with app.app_context():
        if backend == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        from flask_migrate import upgrade

        upgrade()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def empty_tables(app):
    from saas import cache

    app.extensions["background"].join()
    if "event_deliverer" in app.extensions:
        app.extensions["event_deliverer"].join()
    with app.app_context():
        # Rate-limit windows are per tenant id, and ids restart too.
        for limiter in app.extensions.get("limiter", ()):
            limiter.reset()
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))
    # Ids restart after the tables empty: no snapshot of a row may outlive its test.
    cache.clear_all()


@pytest.fixture
def app(base_app):
    from saas.billing.catalog import seed_plans

    with base_app.app_context():
        seed_plans()
        db.session.remove()
    yield base_app
    empty_tables(base_app)


@pytest.fixture
def ctx(app):
    """An app context for calling services directly."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def short_bound(app):
    """Access caches (keys, the key-hash -> limit mapping, plans, tenants, numbers) that keep an entry half a
    second instead of the default; yields that bound, in seconds."""
    saved = app.config["ACCESS_CACHE_SECONDS"]
    app.config["ACCESS_CACHE_SECONDS"] = 0.5
    app.extensions.pop("snapshot_caches", None)
    yield 0.5
    app.config["ACCESS_CACHE_SECONDS"] = saved
    app.extensions.pop("snapshot_caches", None)


CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    # Followed: a logged-in client asking for /login or /signup lands on the dashboard (same session token).
    page = client.get(path, follow_redirects=True)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class AuthActions:
    """Drives the portal's forms the way a browser does, CSRF token included."""

    def __init__(self, client):
        self.client = client

    def signup(self, company="Acme Ltd", email="owner@acme.example.com", password="correct horse", *,
               verify=True):
        """Sign up; with ``verify`` (and a successful signup) open the emailed link and press its button too,
        which logs this browser in.

        Returns the signup's response, or with ``verify`` the verification button's (303 to the dashboard).
        """
        token = csrf_token(self.client, "/signup")
        response = self.client.post("/signup", data={"csrf_token": token, "company": company, "email": email,
                                                     "password": password})
        if not verify or response.status_code != 303:
            return response
        return self.verify(email)

    def verify(self, email="owner@acme.example.com"):
        """Open the last verification link emailed to ``email`` (read from the SMTP sink) and press its button."""
        assert self.client.application.extensions["background"].join()
        link = MAILBOX.link(email.lower(), "Verify your email", "/verify-email/")
        return self.client.post(link, data={"csrf_token": csrf_token(self.client, link)})

    def login(self, email="owner@acme.example.com", password="correct horse"):
        token = csrf_token(self.client, "/login")
        return self.client.post("/login", data={"csrf_token": token, "email": email, "password": password})

    def logout(self):
        token = csrf_token(self.client, "/dashboard")
        return self.client.post("/logout", data={"csrf_token": token})

    def create_key(self, name="Production"):
        token = csrf_token(self.client, "/keys")
        return self.client.post("/keys", data={"csrf_token": token, "name": name})


def verification_link(email: str, timeout: float = 10.0) -> str:
    """The path of the verification link emailed to ``email``, once the SMTP sink has it (a browser test
    opens it; use the ``mailbox`` fixture so the sink starts empty)."""
    import time

    deadline = time.monotonic() + timeout
    while not MAILBOX.to(email.lower(), "Verify your email") and time.monotonic() < deadline:
        time.sleep(0.05)
    return MAILBOX.link(email.lower(), "Verify your email", "/verify-email/")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture(scope="session")
def stripe_server():
    from tests.billing.stripe_fake import FakeStripe

    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def stripe(app, stripe_server):
    """The app with Stripe configured against the loopback fake; yields the fake.

    The fake starts empty for every test; the app's settings are put back after.
    """
    from saas.billing import stripe_client

    stripe_server.reset()
    saved = {name: app.config.get(name) for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET",
                                                      "STRIPE_MAX_RETRIES", "STRIPE_TIMEOUT_SECONDS")}
    app.config.update(STRIPE_SECRET_KEY="sk_test_fake", STRIPE_API_BASE=stripe_server.url,
                      STRIPE_WEBHOOK_SECRET=stripe_server.webhook_secret, STRIPE_MAX_RETRIES=0,
                      STRIPE_TIMEOUT_SECONDS=2.0)
    app.extensions["stripe"] = stripe_client.build(app.config)
    yield stripe_server
    app.config.update(saved)
    app.extensions["stripe"] = stripe_client.build(app.config)


@pytest.fixture(scope="session")
def graph_server():
    from tests.graph_fake import FakeGraph

    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
def graph(app, graph_server):
    """The app pointed at the loopback Graph API (WHATSAPP_GRAPH_URL); yields the fake, emptied."""
    graph_server.reset()
    saved = app.config["WHATSAPP_GRAPH_URL"]
    app.config["WHATSAPP_GRAPH_URL"] = graph_server.url
    yield graph_server
    app.config["WHATSAPP_GRAPH_URL"] = saved


@pytest.fixture
def live_server(app):
    """The app behind a real HTTP server on 127.0.0.1 (werkzeug's, threaded); yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
