"""The admin console's tenant pages, suspension, plans by hand, the audit log, and `flask tenants set-plan`."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from werkzeug.security import generate_password_hash

from saas.audit.models import AuditEvent
from saas.billing.catalog import plan_by_code
from saas.billing.models import Plan, StripeEvent, Subscription
from saas.billing.services import PlanChangeRefused, UnknownPlan, assign_plan, start_subscription
from saas.extensions import db
from saas.tenants import services as accounts
from saas.tenants.models import ROLE_OWNER, Tenant, User
from saas.timeutil import utcnow
from tests.conftest import AuthActions, csrf_token
from tests.factories import make_tenant, sender

ADMIN_EMAIL = "root@ops.example.com"
ADMIN_PASSWORD = "admin password"
IMAGE = {"messaging_product": "whatsapp", "to": "15551230001", "type": "image",
         "image": {"link": "https://example.com/a.png"}}


# -- helpers -----------------------------------------------------------------------------------

def text_of(response) -> str:
    return response.get_data(as_text=True)


def cells(page: str, table_id: str) -> list[list[str]]:
    """The cells (tags stripped, unescaped) of each body row of the table with this id."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert table, f"no table {table_id} on the page"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    return [[html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell))).strip()
             for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def tenant_rows(page: str, table_id: str = "tenant-list") -> dict[str, list[str]]:
    """{slug: [name, slug, owner, status, plan, subscription, usage, revenue]}."""
    return {row[1]: row for row in cells(page, table_id) if len(row) == 8}


def audit_entries(app, tenant_id=None) -> list[AuditEvent]:
    with app.app_context():
        # The console's own entries: not those of the API keys the fixtures make.
        query = select(AuditEvent).where(AuditEvent.action.not_like("api_key.%")).order_by(AuditEvent.id)
        if tenant_id is not None:
            query = query.where(AuditEvent.tenant_id == tenant_id)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
    return rows


def subscription_of(app, tenant_id) -> Subscription:
    with app.app_context():
        row = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
        plan_code = row.plan.code
        db.session.expunge_all()
        db.session.remove()
    row.plan_code = plan_code
    return row


def tenant_status(app, tenant_id) -> str:
    with app.app_context():
        status = db.session.get(Tenant, tenant_id).status
        db.session.remove()
    return status


def set_subscription(app, tenant_id, **values) -> None:
    """Change a tenant's subscription row directly, as Stripe's webhooks would have left it."""
    with app.app_context():
        row = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
        if "plan" in values:
            row.plan_id = plan_by_code(values.pop("plan")).id
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()
        db.session.remove()


_fast_seq = iter(range(10_000, 10**9))


def quick_tenants(app, n: int, *, name="Bulk", plan="free") -> list[int]:
    """``n`` tenants, each with an owner and a subscription, without signup's password hashing."""
    password_hash = generate_password_hash("unused password", method="pbkdf2:sha256:1")
    ids = []
    with app.app_context():
        for _ in range(n):
            i = next(_fast_seq)
            tenant = Tenant(name=f"{name} {i}", slug=f"{name.lower()}-{i}")
            db.session.add(tenant)
            db.session.add(User(tenant=tenant, email=f"owner{i}@bulk.example.com", role=ROLE_OWNER,
                                password_hash=password_hash))
            db.session.flush()
            start_subscription(tenant, plan)
            ids.append(tenant.id)
        db.session.commit()
        db.session.remove()
    return ids


def new_tenant(app, plan="free", **kwargs) -> Tenant:
    with app.app_context():
        tenant = make_tenant(plan, **kwargs)
        db.session.expunge(tenant)
        db.session.remove()
    return tenant


@pytest.fixture
def admin(app):
    """A logged-in platform admin's client."""
    with app.app_context():
        accounts.create_platform_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        db.session.remove()
    client = app.test_client()
    assert AuthActions(client).login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD).status_code == 302
    return client


@pytest.fixture
def tenant_user(app):
    """A logged-in tenant owner's client (no platform rights)."""
    client = app.test_client()
    assert AuthActions(client).signup(company="Plain Tenant", email="plain@tenant.example.com").status_code == 303
    return client


def post_form(client, path, data=None, token_from="/admin/"):
    return client.post(path, data={"csrf_token": csrf_token(client, token_from), **(data or {})})


# -- who may see the console ----------------------------------------------------------------------

PAGES = ["/admin/", "/admin/tenants", "/admin/tenants?q=acme&page=2", "/admin/tenants/{id}", "/admin/audit",
         "/admin/audit?tenant={id}"]


@pytest.mark.parametrize("path", PAGES)
def test_every_admin_page_is_404_for_a_tenant_user(app, tenant_user, path):
    tenant = new_tenant(app)
    response = tenant_user.get(path.format(id=tenant.id))
    assert response.status_code == 404
    assert "Platform admin" not in text_of(response) and tenant.slug not in text_of(response)


@pytest.mark.parametrize("path", PAGES)
def test_every_admin_page_sends_the_anonymous_to_login(app, client, path):
    tenant = new_tenant(app)
    response = client.get(path.format(id=tenant.id))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", PAGES)
def test_every_admin_page_opens_for_a_platform_admin(app, admin, path):
    tenant = new_tenant(app)
    response = admin.get(path.format(id=tenant.id))
    assert response.status_code == 200
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("action, data", [("suspend", {}), ("reactivate", {}), ("plan", {"plan": "enterprise"})])
def test_a_tenant_user_cannot_act_as_admin(app, tenant_user, action, data):
    victim = new_tenant(app)
    if action == "reactivate":
        with app.app_context():
            db.session.get(Tenant, victim.id).status = "suspended"
            db.session.commit()
            db.session.remove()
    before = (tenant_status(app, victim.id), subscription_of(app, victim.id).plan_code)
    response = post_form(tenant_user, f"/admin/tenants/{victim.id}/{action}", data, token_from="/keys")
    assert response.status_code == 404
    assert (tenant_status(app, victim.id), subscription_of(app, victim.id).plan_code) == before
    assert audit_entries(app) == []


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "999999", "99999999999999999999999", "1.5"])
def test_a_non_numeric_or_unknown_tenant_id_is_404(app, admin, raw):
    new_tenant(app)
    assert admin.get(f"/admin/tenants/{raw}").status_code == 404
    assert post_form(admin, f"/admin/tenants/{raw}/suspend").status_code == 404
    assert admin.get(f"/admin/audit?tenant={raw}").status_code == 404


# -- the overview and the tenant list -----------------------------------------------------------

@pytest.fixture
def mixed(app):
    """Tenants in every state that matters for revenue; {name: tenant id}."""
    with app.app_context():
        eur_yearly = Plan(code="pro_eur_year", name="Pro (EUR, yearly)", price_cents=120000, currency="eur",
                          interval="year", included_conversations=60000, overage_cents=4, features=["text"],
                          active=True, sort_order=40)
        db.session.add(eur_yearly)
        db.session.commit()
        db.session.remove()
    grace = app.config["PAST_DUE_GRACE_DAYS"]
    ids = {}
    ids["free"] = new_tenant(app, "free", name="Free Co").id
    ids["pro"] = new_tenant(app, "free", name="Pro Co").id
    set_subscription(app, ids["pro"], plan="pro", status="active", stripe_subscription_id="sub_pro")
    ids["starter_late"] = new_tenant(app, "free", name="Late Co").id
    set_subscription(app, ids["starter_late"], plan="starter", status="past_due",
                     past_due_since=utcnow() - timedelta(days=grace - 1))
    ids["lapsed"] = new_tenant(app, "free", name="Lapsed Co").id
    set_subscription(app, ids["lapsed"], plan="enterprise", status="past_due",
                     past_due_since=utcnow() - timedelta(days=grace + 1))
    ids["canceled"] = new_tenant(app, "free", name="Gone Co").id
    set_subscription(app, ids["canceled"], plan="pro", status="canceled")
    ids["trial"] = new_tenant(app, "free", name="Trial Co").id
    set_subscription(app, ids["trial"], plan="starter", status="trialing")
    ids["eur"] = new_tenant(app, "free", name="Euro Co").id
    set_subscription(app, ids["eur"], plan="pro_eur_year", status="active")
    ids["suspended"] = new_tenant(app, "free", name="Frozen Co").id
    set_subscription(app, ids["suspended"], plan="pro", status="active")
    with app.app_context():
        db.session.get(Tenant, ids["suspended"]).status = "suspended"
        db.session.commit()
        db.session.remove()
    return ids


def test_overview_counts_tenants_and_monthly_revenue_per_currency(app, admin, mixed):
    page = text_of(admin.get("/admin/"))
    figure = lambda name: re.search(rf'<strong id="count-{name}">(\d+)</strong>', page).group(1)  # noqa: E731
    assert figure("tenants") == "8"
    assert figure("active") == "7"
    assert figure("suspended") == "1"
    # Paying: pro, starter within grace, starter trialing, the EUR yearly one, and the suspended pro.
    assert figure("paying") == "5"
    assert "of which 1 in a trial" in page
    # USD: 99 (pro) + 29 (past due within grace) + 29 (trial) + 99 (suspended, still billed) = 256.
    assert re.search(r'<li id="mrr-usd">USD 256.00</li>', page)
    # EUR: 1,200 a year is 100 a month.
    assert re.search(r'<li id="mrr-eur">EUR 100.00</li>', page)
    assert 'href="/admin/tenants"' in page and 'href="/admin/audit"' in page


def test_tenant_list_shows_plan_status_usage_and_revenue(app, admin, mixed):
    # The free tenant sends three messages to two contacts: two conversations.
    free = sender(app.test_client(), "free")
    for to in ("15550000001", "15550000002", "15550000001"):
        assert free.send(to=to).status_code == 200
    rows = tenant_rows(text_of(admin.get("/admin/tenants")))
    with app.app_context():
        slugs = {key: db.session.get(Tenant, tid).slug for key, tid in mixed.items()}
        free_slug = db.session.get(Tenant, free.tenant_id).slug
        db.session.remove()
    assert rows[free_slug][3:] == ["active", "Free", "active", "2 / 250 conversations", "USD 0.00"]
    assert rows[slugs["pro"]][3:] == ["active", "Pro", "active", "0 / 5000 conversations", "USD 99.00"]
    assert rows[slugs["starter_late"]][3:] == ["active", "Starter", "past due", "0 / 1000 conversations", "USD 29.00"]
    # Past the grace period: free rights, and nothing earned.
    assert rows[slugs["lapsed"]][3:] == ["active", "Enterprise (Free rights)", "past due", "0 / 250 conversations",
                                         "USD 0.00"]
    assert rows[slugs["canceled"]][3:] == ["active", "Pro (Free rights)", "canceled", "0 / 250 conversations",
                                           "USD 0.00"]
    assert rows[slugs["trial"]][3:] == ["active", "Starter", "trialing", "0 / 1000 conversations", "USD 29.00"]
    assert rows[slugs["eur"]][3:] == ["active", "Pro (EUR, yearly)", "active", "0 / 60000 conversations", "EUR 100.00"]
    assert rows[slugs["suspended"]][3] == "suspended"
    assert rows[slugs["pro"]][0] == "Pro Co"
    assert rows[slugs["pro"]][2].startswith("owner") and rows[slugs["pro"]][2].endswith(".example.com")


def test_usage_in_the_list_is_the_current_stripe_period_not_the_calendar_month(app, admin):
    acme = sender(app.test_client(), "free")
    assert acme.send().status_code == 200
    # A Stripe period that started after that send: nothing used in it yet.
    set_subscription(app, acme.tenant_id, current_period_start=utcnow() + timedelta(seconds=-1),
                     current_period_end=utcnow() + timedelta(days=30))
    with app.app_context():
        slug = db.session.get(Tenant, acme.tenant_id).slug
        db.session.remove()
    # Roll up so the counter, not only the ledger, is read.
    with app.app_context():
        app.extensions["metering"].roll_up_all(db.session)
        db.session.remove()
    assert tenant_rows(text_of(admin.get("/admin/tenants")))[slug][6] == "0 / 250 conversations"
    set_subscription(app, acme.tenant_id, current_period_start=None, current_period_end=None)
    assert tenant_rows(text_of(admin.get("/admin/tenants")))[slug][6] == "1 / 250 conversations"


def test_search_matches_name_slug_and_owner_email_in_any_case(app, admin):
    new_tenant(app, name="Acme Widgets", email="boss@acme.example.com")
    new_tenant(app, name="Globex", email="hank@globex.example.com")
    new_tenant(app, name="Initech 100%", email="bill@initech.example.com")

    def found(q):
        return sorted(row[0] for row in tenant_rows(text_of(admin.get("/admin/tenants", query_string={"q": q})))
                      .values())

    assert found("acme") == ["Acme Widgets"]
    assert found("WIDG") == ["Acme Widgets"]
    assert found("globex") == ["Globex"]                # slug (and name)
    assert found("hank@") == ["Globex"]                 # owner email
    assert found("INITECH.example") == ["Initech 100%"]
    assert found("100%") == ["Initech 100%"]            # % is a character, not a wildcard
    assert found("%") == ["Initech 100%"]
    assert found("_") == []
    assert found("nobody") == []
    assert len(found("")) == 3
    page = text_of(admin.get("/admin/tenants", query_string={"q": "nobody"}))
    assert "No tenants match “nobody”" in page


def test_a_long_search_is_cut_to_its_bound(app, admin):
    new_tenant(app, name="Acme Widgets")
    response = admin.get("/admin/tenants", query_string={"q": "acme" + "x" * 5000})
    assert response.status_code == 200
    assert 'value="acme' + "x" * 96 + '"' in text_of(response)
    assert tenant_rows(text_of(response)) == {}


def test_tenant_list_pages_by_fifty_newest_first(app, admin):
    ids = quick_tenants(app, 53)
    first = text_of(admin.get("/admin/tenants"))
    rows = cells(first, "tenant-list")
    assert len(rows) == 50
    assert 'href="/admin/tenants?page=2"' in first and 'rel="prev"' not in first
    second = text_of(admin.get("/admin/tenants?page=2"))
    later = cells(second, "tenant-list")
    assert len(later) == 3
    assert 'rel="next"' not in second and 'href="/admin/tenants?page=1"' in second
    shown = [r[1] for r in rows + later]
    assert len(set(shown)) == 53
    with app.app_context():
        expected = list(db.session.scalars(select(Tenant.slug).order_by(Tenant.id.desc())))
        db.session.remove()
    assert shown == expected
    # A bad page number is the first page; a page past the end is empty.
    assert cells(text_of(admin.get("/admin/tenants?page=abc")), "tenant-list") == rows
    assert cells(text_of(admin.get("/admin/tenants?page=9")), "tenant-list") == [["No tenants."]]
    # The search is kept from page to page.
    assert 'href="/admin/tenants?page=2&amp;q=bulk"' in text_of(admin.get("/admin/tenants?q=bulk"))


def count_queries(app, fn) -> int:
    statements = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return len(statements)


def test_tenant_list_costs_the_same_queries_for_three_tenants_as_for_fifty(app, admin):
    quick_tenants(app, 3)
    # Warm: the login's user and the plans' cached snapshots.
    assert admin.get("/admin/tenants").status_code == 200
    few = count_queries(app, lambda: admin.get("/admin/tenants"))
    quick_tenants(app, 47, plan="starter")
    quick_tenants(app, 10, plan="pro")
    admin.get("/admin/tenants")
    many = count_queries(app, lambda: admin.get("/admin/tenants"))
    assert len(cells(text_of(admin.get("/admin/tenants")), "tenant-list")) == 50
    assert many == few, f"{few} queries for 3 tenants, {many} for 50"
    assert few <= 8
    assert count_queries(app, lambda: admin.get("/admin/")) <= 12


# -- one tenant's page --------------------------------------------------------------------------

def add_event(app, event_id, tenant_id, type_, minutes_ago, **values):
    with app.app_context():
        db.session.add(StripeEvent(id=event_id, type=type_, created=utcnow() - timedelta(minutes=minutes_ago),
                                   tenant_id=tenant_id, **values))
        db.session.commit()
        db.session.remove()


def test_tenant_page_shows_its_own_stripe_events_newest_first_and_no_other_tenants(app, admin):
    acme = new_tenant(app, "starter", name="Acme")
    other = new_tenant(app, "pro", name="Other")
    add_event(app, "evt_old", acme.id, "customer.subscription.created", 30, processed_at=utcnow(),
              attempts=1, outcome="Starter, active")
    add_event(app, "evt_new", acme.id, "invoice.payment_failed", 5, attempts=3, error="card <declined>")
    add_event(app, "evt_other", other.id, "customer.subscription.deleted", 1, outcome="secret of another")
    add_event(app, "evt_nobody", None, "customer.created", 2)
    page = text_of(admin.get(f"/admin/tenants/{acme.id}"))
    rows = cells(page, "stripe-events")
    assert [r[0] for r in rows] == ["evt_new", "evt_old"]
    assert rows[0][1] == "invoice.payment_failed" and rows[0][3].startswith("not yet (3 attempts)")
    assert rows[0][5] == "card <declined>"
    assert "card &lt;declined&gt;" in page
    assert rows[1][4] == "Starter, active"
    assert "evt_other" not in page and "secret of another" not in page and "evt_nobody" not in page


def test_tenant_page_shows_subscription_usage_users_numbers_and_audit(app, admin):
    acme = sender(app.test_client(), "free")
    assert acme.send(to="15550000009").status_code == 200
    period_end = utcnow() + timedelta(days=20)
    set_subscription(app, acme.tenant_id, plan="pro", status="past_due", stripe_subscription_id="sub_123",
                     stripe_price_id="price_pro", past_due_since=utcnow(), cancel_at_period_end=True,
                     trial_end=None, current_period_start=None, current_period_end=period_end)
    with app.app_context():
        tenant = db.session.get(Tenant, acme.tenant_id)
        from saas.audit import services as audit
        audit.record("stripe", "subscription.changed", "Subscription now Pro, past_due", tenant_id=tenant.id)
        db.session.commit()
        db.session.remove()
    page = text_of(admin.get(f"/admin/tenants/{acme.tenant_id}"))
    subscription = {row[0]: row[1] for row in cells(page, "subscription")}
    assert subscription["Plan"] == "Pro pro"
    assert subscription["Status"] == "past due"
    assert subscription["Stripe subscription"] == "sub_123"
    assert subscription["Cancels at period end"] == "yes"
    assert subscription["Monthly revenue"] == "USD 99.00"
    assert subscription["Past due since"] != "—"
    [by_category] = cells(page, "usage-by-category")
    assert sorted(by_category[:4]) == ["0", "0", "0", "1"] and by_category[4] == "1"
    assert "1 of 5000 conversations" in page
    users = cells(page, "users")
    assert len(users) == 1 and users[0][1] == "owner"
    assert len(cells(page, "numbers")) == 1 and "sandbox" in cells(page, "numbers")[0]
    audit_rows = cells(page, "audit-log")
    assert audit_rows[0][1:] == ["stripe", "subscription.changed", "Subscription now Pro, past_due"]


# -- suspend and reactivate -----------------------------------------------------------------------

def test_suspension_refuses_the_tenants_api_at_once_and_reactivation_serves_it_again(app, admin):
    acme = sender(app.test_client(), "free")
    assert acme.send().status_code == 200  # the tenant's snapshot is now cached
    assert acme.get("/api/v1/usage").status_code == 200

    page = text_of(admin.get(f"/admin/tenants/{acme.tenant_id}"))
    assert 'id="suspend-form"' in page and "<details>" in page
    response = post_form(admin, f"/admin/tenants/{acme.tenant_id}/suspend",
                         token_from=f"/admin/tenants/{acme.tenant_id}")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/tenants/{acme.tenant_id}"
    assert tenant_status(app, acme.tenant_id) == "suspended"

    refused = acme.send()
    assert refused.status_code == 403
    assert refused.get_json()["error"]["reason"] == "tenant_suspended"
    v1 = acme.client.post("/api/v1/messages", headers=acme.headers,
                          json={"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                                "text": {"body": "hi"}})
    assert v1.status_code == 403 and v1.get_json()["error"]["code"] == "tenant_suspended"
    for path in ("/api/v1/usage", "/api/v1/messages", "/api/v1/numbers"):  # reads too
        read = acme.get(path)
        assert read.status_code == 403 and read.get_json()["error"]["code"] == "tenant_suspended", path
    shown = text_of(admin.get(f"/admin/tenants/{acme.tenant_id}"))
    assert 'id="reactivate-form"' in shown and "is suspended" in shown

    response = post_form(admin, f"/admin/tenants/{acme.tenant_id}/reactivate")
    assert response.status_code == 303
    assert tenant_status(app, acme.tenant_id) == "active"
    assert acme.send().status_code == 200
    assert acme.get("/api/v1/usage").status_code == 200

    entries = audit_entries(app, acme.tenant_id)
    assert [(e.action, e.actor) for e in entries] == [("tenant.suspended", ADMIN_EMAIL),
                                                       ("tenant.reactivated", ADMIN_EMAIL)]
    assert all(e.actor_user_id is not None and e.created_at is not None for e in entries)


def test_suspending_twice_changes_nothing_the_second_time(app, admin):
    tenant = new_tenant(app)
    assert post_form(admin, f"/admin/tenants/{tenant.id}/suspend").status_code == 303
    second = post_form(admin, f"/admin/tenants/{tenant.id}/suspend")
    assert second.status_code == 303
    assert "already suspended" in text_of(admin.get(second.headers["Location"]))
    assert [e.action for e in audit_entries(app, tenant.id)] == ["tenant.suspended"]


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_suspend_needs_the_csrf_token(app, admin, token):
    tenant = new_tenant(app)
    data = {"csrf_token": token} if token else {}
    response = admin.post(f"/admin/tenants/{tenant.id}/suspend", data=data)
    assert response.status_code == 400
    assert tenant_status(app, tenant.id) == "active"
    assert audit_entries(app) == []


def test_suspend_by_get_is_not_allowed(app, admin):
    tenant = new_tenant(app)
    assert admin.get(f"/admin/tenants/{tenant.id}/suspend").status_code == 405
    assert tenant_status(app, tenant.id) == "active"


# -- plans by hand -------------------------------------------------------------------------------

def test_assigning_a_plan_without_stripe_works_at_once_and_is_audited(app, admin):
    assert not app.config.get("STRIPE_SECRET_KEY")
    acme = sender(app.test_client(), "free")
    assert acme.send(payload=IMAGE).status_code == 403  # images are not in the free plan
    page = text_of(admin.get(f"/admin/tenants/{acme.tenant_id}"))
    options = re.findall(r'<option[^>]*value="([a-z_]+)"', page)
    assert options == ["free", "starter", "pro", "enterprise"]
    assert re.search(r'<option selected value="free">|<option value="free" selected>', page)

    response = post_form(admin, f"/admin/tenants/{acme.tenant_id}/plan", {"plan": "pro"})
    assert response.status_code == 303
    assert subscription_of(app, acme.tenant_id).plan_code == "pro"
    assert acme.send(payload=IMAGE).status_code == 200  # the cached rights were dropped by the commit
    [entry] = audit_entries(app, acme.tenant_id)
    assert (entry.action, entry.actor) == ("plan.assigned", ADMIN_EMAIL)
    assert entry.summary == "Plan set by hand: Free → Pro"
    assert entry.details == {"plan_from": "free", "plan_to": "pro"}
    assert "Plan set by hand: Free → Pro" in text_of(admin.get(f"/admin/tenants/{acme.tenant_id}"))


def test_assigning_a_plan_over_an_ended_stripe_subscription_lets_it_go(app, admin, stripe):
    tenant = new_tenant(app, "free")
    set_subscription(app, tenant.id, plan="pro", status="canceled", stripe_subscription_id="sub_ended",
                     stripe_price_id="price_pro", cancel_at_period_end=True)
    response = post_form(admin, f"/admin/tenants/{tenant.id}/plan", {"plan": "starter"})
    assert response.status_code == 303
    row = subscription_of(app, tenant.id)
    assert (row.plan_code, row.status, row.stripe_subscription_id, row.cancel_at_period_end) == \
        ("starter", "active", None, False)
    [entry] = audit_entries(app, tenant.id)
    assert entry.summary == "Plan set by hand: Pro → Starter (subscription canceled → active)"


def test_assigning_a_plan_is_refused_while_a_live_stripe_subscription_decides_it(app, admin, stripe):
    tenant = new_tenant(app, "free")
    set_subscription(app, tenant.id, plan="starter", status="active", stripe_subscription_id="sub_live")
    page = text_of(admin.get(f"/admin/tenants/{tenant.id}"))
    assert 'id="plan-from-stripe"' in page and "Change it in Stripe" in page
    assert 'id="plan-form"' not in page

    response = post_form(admin, f"/admin/tenants/{tenant.id}/plan", {"plan": "pro"})
    assert response.status_code == 409
    assert "change it in Stripe" in html.unescape(text_of(response))
    assert subscription_of(app, tenant.id).plan_code == "starter"
    assert audit_entries(app) == []
    assert stripe.requests() == []  # nothing was asked of Stripe either


def test_without_stripe_configured_a_plan_may_be_assigned_whatever_the_row_says(app, admin):
    tenant = new_tenant(app, "free")
    set_subscription(app, tenant.id, plan="starter", status="active", stripe_subscription_id="sub_live")
    assert 'id="plan-form"' in text_of(admin.get(f"/admin/tenants/{tenant.id}"))
    assert post_form(admin, f"/admin/tenants/{tenant.id}/plan", {"plan": "pro"}).status_code == 303
    assert subscription_of(app, tenant.id).plan_code == "pro"


def test_an_archived_plan_is_not_offered_and_not_accepted(app, admin):
    tenant = new_tenant(app, "free")
    with app.app_context():
        plan_by_code("enterprise").active = False
        db.session.commit()
        db.session.remove()
    page = text_of(admin.get(f"/admin/tenants/{tenant.id}"))
    assert re.findall(r'<option[^>]*value="([a-z_]+)"', page) == ["free", "starter", "pro"]
    response = post_form(admin, f"/admin/tenants/{tenant.id}/plan", {"plan": "enterprise"})
    assert response.status_code == 400
    assert subscription_of(app, tenant.id).plan_code == "free"
    with app.app_context():
        with pytest.raises(PlanChangeRefused):
            assign_plan(db.session.get(Tenant, tenant.id), "enterprise", actor="cli")
        with pytest.raises(UnknownPlan):
            assign_plan(db.session.get(Tenant, tenant.id), "nonesuch", actor="cli")
        db.session.remove()
    assert audit_entries(app) == []


def test_a_tenant_on_an_archived_plan_sees_it_offered_as_its_current_one(app, admin):
    tenant = new_tenant(app, "enterprise")
    with app.app_context():
        plan_by_code("enterprise").active = False
        db.session.commit()
        db.session.remove()
    page = text_of(admin.get(f"/admin/tenants/{tenant.id}"))
    assert re.findall(r'<option[^>]*value="([a-z_]+)"', page) == ["free", "starter", "pro", "enterprise"]
    assert "Enterprise (archived)" in page


def test_assign_plan_needs_the_csrf_token(app, admin):
    tenant = new_tenant(app, "free")
    assert admin.post(f"/admin/tenants/{tenant.id}/plan", data={"plan": "pro"}).status_code == 400
    assert subscription_of(app, tenant.id).plan_code == "free"


# -- flask tenants set-plan ------------------------------------------------------------------------

def test_cli_set_plan_by_slug_or_owner_email_prints_the_change_and_is_audited(app, runner):
    tenant = new_tenant(app, "free", email="boss@acme.example.com")
    result = runner.invoke(args=["tenants", "set-plan", tenant.slug, "pro"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{tenant.slug}: Free (active) -> Pro (active)."
    result = runner.invoke(args=["tenants", "set-plan", "boss@acme.example.com", "starter"])
    assert result.exit_code == 0, result.output
    assert subscription_of(app, tenant.id).plan_code == "starter"
    again = runner.invoke(args=["tenants", "set-plan", tenant.slug, "starter"])
    assert again.exit_code == 0 and "nothing changed" in again.output
    entries = audit_entries(app, tenant.id)
    assert [(e.actor, e.action, e.details["plan_to"]) for e in entries] == [
        ("cli", "plan.assigned", "pro"), ("cli", "plan.assigned", "starter")]


@pytest.mark.parametrize("who, code, message", [
    ("nobody", "pro", "No tenant with slug or owner email 'nobody'."),
    ("{slug}", "platinum", "No plan with code 'platinum'."),
])
def test_cli_set_plan_fails_for_an_unknown_tenant_or_plan(app, runner, who, code, message):
    tenant = new_tenant(app, "free")
    result = runner.invoke(args=["tenants", "set-plan", who.format(slug=tenant.slug), code])
    assert result.exit_code != 0
    assert message in result.output
    assert subscription_of(app, tenant.id).plan_code == "free"
    assert audit_entries(app) == []


def test_cli_set_plan_refuses_a_live_stripe_subscription_unless_forced(app, runner, stripe):
    tenant = new_tenant(app, "free")
    set_subscription(app, tenant.id, plan="starter", status="active", stripe_subscription_id="sub_live")
    refused = runner.invoke(args=["tenants", "set-plan", tenant.slug, "pro"])
    assert refused.exit_code != 0
    assert "sub_live" in refused.output and "--force" in refused.output
    assert subscription_of(app, tenant.id).plan_code == "starter"
    assert audit_entries(app) == []

    forced = runner.invoke(args=["tenants", "set-plan", tenant.slug, "pro", "--force"])
    assert forced.exit_code == 0, forced.output
    assert f"{tenant.slug}: Starter (active) -> Pro (active)." in forced.output
    assert "sub_live still bills its own plan" in forced.output
    row = subscription_of(app, tenant.id)
    assert (row.plan_code, row.stripe_subscription_id) == ("pro", "sub_live")
    [entry] = audit_entries(app, tenant.id)
    assert entry.actor == "cli"
    assert entry.details == {"plan_from": "starter", "plan_to": "pro", "forced": True,
                             "stripe_subscription": "sub_live"}
    assert "overriding Stripe subscription sub_live" in entry.summary


# -- the audit log page ----------------------------------------------------------------------------

def test_audit_page_lists_entries_newest_first_with_actor_and_time(app, admin, runner):
    acme = new_tenant(app, "free", name="Acme")
    other = new_tenant(app, "free", name="Other")
    assert post_form(admin, f"/admin/tenants/{acme.id}/suspend").status_code == 303
    assert runner.invoke(args=["tenants", "set-plan", other.slug, "pro"]).exit_code == 0
    page = text_of(admin.get("/admin/audit"))
    rows = cells(page, "audit-log")
    assert [r[1:4] for r in rows] == [["cli", "Other", "plan.assigned"], [ADMIN_EMAIL, "Acme", "tenant.suspended"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[0]) for r in rows)
    only_acme = cells(text_of(admin.get(f"/admin/audit?tenant={acme.id}")), "audit-log")
    assert [r[3] for r in only_acme] == ["tenant.suspended"]


def test_audit_page_pages_by_fifty(app, admin):
    from saas.audit import services as audit

    tenant = new_tenant(app)
    with app.app_context():
        for i in range(52):
            audit.record("cli", "test.entry", f"entry {i}", tenant_id=tenant.id)
        db.session.commit()
        db.session.remove()
    first = text_of(admin.get(f"/admin/audit?tenant={tenant.id}"))
    assert len(cells(first, "audit-log")) == 50
    assert cells(first, "audit-log")[0][4] == "entry 51"
    assert f'href="/admin/audit?page=2&amp;tenant={tenant.id}"' in first
    second = cells(text_of(admin.get(f"/admin/audit?tenant={tenant.id}&page=2")), "audit-log")
    assert [r[4] for r in second] == ["entry 1", "entry 0"]


# -- what is shown is safe --------------------------------------------------------------------------

BIDI = "\u202e\u2066\u202a\u2069\u202c"


def test_tenant_names_lose_bidi_controls_and_stay_escaped(app, admin):
    # Signup refuses bidi controls now; a name stored before that rule still has them.
    tenant = new_tenant(app, name="Evil<script>x</script> gpj.exe")
    with app.app_context():
        db.session.get(Tenant, tenant.id).name = f"Evil{BIDI}<script>x</script> gpj.exe"
        db.session.commit()
    assert post_form(admin, f"/admin/tenants/{tenant.id}/suspend").status_code == 303
    for path in ("/admin/", "/admin/tenants", f"/admin/tenants/{tenant.id}", "/admin/audit",
                 f"/admin/audit?tenant={tenant.id}"):
        page = text_of(admin.get(path))
        assert not any(ch in page for ch in BIDI), path
        assert "<script>x</script>" not in page, path
        # (A long token may be marked as breakable: <span class="token">, app.css.)
        assert "Evil&lt;script&gt;x&lt;/script&gt; gpj.exe" in re.sub(r'<span class="token">(.*?)</span>', r"\1",
                                                                        page), path
