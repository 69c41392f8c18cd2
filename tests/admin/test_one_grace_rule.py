"""The past-due grace is one rule: rights, the console's revenue per tenant and its revenue figure all follow it.

The grace here is 3 days, not the default 7: any of the three that counted a
length of its own (or one day more) would put the tenant past it on the
wrong side.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from saas.billing import entitlements
from saas.extensions import db
from saas.tenants import services as accounts
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests.admin.test_tenants import cells, new_tenant, set_subscription, tenant_rows, text_of
from tests.conftest import AuthActions

GRACE_DAYS = 3


@pytest.fixture
def short_grace(app):
    before = app.config["PAST_DUE_GRACE_DAYS"]
    app.config["PAST_DUE_GRACE_DAYS"] = GRACE_DAYS
    yield
    app.config["PAST_DUE_GRACE_DAYS"] = before


@pytest.fixture
def admin(app):
    with app.app_context():
        accounts.create_platform_admin("root@ops.example.com", "admin password")
        db.session.remove()
    client = app.test_client()
    assert AuthActions(client).login(email="root@ops.example.com", password="admin password").status_code == 302
    return client


@pytest.fixture
def late_payers(app, short_grace):
    """Two Pro tenants past due: one an hour inside the grace, one an hour past it; {which: (id, slug)}."""
    tenants = {}
    for which, hours in (("inside", -1), ("past", 1)):
        tenant = new_tenant(app, "free", name=f"Late {which}")
        set_subscription(app, tenant.id, plan="pro", status="past_due", stripe_subscription_id=f"sub_{which}",
                         past_due_since=utcnow() - timedelta(days=GRACE_DAYS, hours=hours))
        tenants[which] = (tenant.id, tenant.slug)
    return tenants


def test_rights_follow_the_configured_grace(app, late_payers):
    with app.app_context():
        effective = {which: entitlements.for_tenant(db.session.get(Tenant, tenant_id)).effective.code
                     for which, (tenant_id, _) in late_payers.items()}
        db.session.remove()
    assert effective == {"inside": "pro", "past": "free"}


def test_each_tenants_revenue_follows_the_configured_grace(app, admin, late_payers):
    rows = tenant_rows(text_of(admin.get("/admin/tenants")))
    assert rows[late_payers["inside"][1]][4:] == ["Pro", "past due", "0 / 5000 conversations", "USD 99.00"]
    assert rows[late_payers["past"][1]][4:] == ["Pro (Free rights)", "past due", "0 / 250 conversations", "USD 0.00"]
    for which, revenue in (("inside", "USD 99.00"), ("past", "USD 0.00")):
        page = text_of(admin.get(f"/admin/tenants/{late_payers[which][0]}"))
        assert {row[0]: row[1] for row in cells(page, "subscription")}["Monthly revenue"] == revenue


def test_the_revenue_figure_follows_the_configured_grace(app, admin, late_payers):
    page = text_of(admin.get("/admin/"))
    assert re.search(r'<strong id="count-paying">(\d+)</strong>', page).group(1) == "1"
    assert re.search(r'<li id="mrr-usd">USD 99.00</li>', page)
    assert f"the {GRACE_DAYS}-day grace period" in page
