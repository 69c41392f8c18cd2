"""The admin's plan pages (/admin/plans): access, create, edit, archive, and syncing to Stripe."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from saas.audit.models import AuditEvent
from saas.billing.catalog import plan_by_code, plan_on_offer
from saas.billing.models import Plan
from saas.billing.services import UnknownPlan, start_subscription
from saas.extensions import db
from saas.tenants import services as accounts
from tests import factories
from tests.conftest import AuthActions, csrf_token

ADMIN_EMAIL = "root@ops.example.com"
ADMIN_PASSWORD = "admin password"

VALID = {"code": "gold", "name": "Gold", "description": "For big senders.\r\nWith a second line.",
         "price_cents": "19900", "currency": "USD", "interval": "month", "included_conversations": "20000",
         "overage_cents": "3", "rate_limit_per_minute": "2000", "phone_numbers_allowed": "10",
         "features": ["text", "template", "broadcast", "multi_number"], "trial_days": "14", "sort_order": "25"}


# -- helpers ------------------------------------------------------------------------------

def page_of(response) -> str:
    return response.get_data(as_text=True)


def field_errors(page: str) -> dict[str, str]:
    return {m.group(1): html.unescape(m.group(2)) for m in
            re.finditer(r'<small class="field-error" id="([a-z_]+)-error">([^<]*)</small>', page)}


def row(page: str, code: str) -> str:
    match = re.search(rf'<tr id="plan-row-{code}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {code}"
    return match.group(1)


def cell(page: str, code: str, css_class: str) -> str:
    match = re.search(rf'<td[^>]* class="{css_class}"[^>]*>(.*?)</td>', row(page, code), re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="flash [a-z]+" role="status">(.*?)</div>', page, re.S)]


def audit_actions(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        db.session.remove()
    return events


def stored_plan(app, code: str) -> Plan | None:
    with app.app_context():
        plan = plan_by_code(code)
        if plan is not None:
            db.session.expunge(plan)
        db.session.remove()
    return plan


class Admin:
    def __init__(self, client):
        self.client = client

    def token(self) -> str:
        return csrf_token(self.client, "/admin/plans")

    def post(self, path: str, data: dict | None = None):
        return self.client.post(path, data={"csrf_token": self.token(), **(data or {})})

    def create(self, **changes):
        return self.post("/admin/plans/new", {**VALID, **changes})

    def edit(self, plan_code: str, **changes):
        with self.client.application.app_context():
            plan = plan_by_code(plan_code)
            data = {name: getattr(plan, name) for name in VALID if name != "code"}
            db.session.remove()
        data["overage_cents"] = "" if data["overage_cents"] is None else data["overage_cents"]
        data.update(changes)
        return self.post(f"/admin/plans/{plan_code}/edit", data)


@pytest.fixture
def admin(app, client):
    with app.app_context():
        accounts.create_platform_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        db.session.remove()
    assert AuthActions(client).login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD).status_code == 302
    return Admin(client)


@pytest.fixture
def owner(app):
    """A tenant owner logged in on a client of their own."""
    auth = AuthActions(app.test_client())
    assert auth.signup().status_code == 303
    return auth


PAGES = ["/admin/plans", "/admin/plans/new", "/admin/plans/pro/edit"]
ACTIONS = ["/admin/plans/new", "/admin/plans/pro/edit", "/admin/plans/pro/archive", "/admin/plans/pro/unarchive",
           "/admin/plans/pro/sync"]


# -- who may see them -------------------------------------------------------------------------

def test_every_plan_page_and_action_is_404_for_a_tenant_user(app, owner):
    for path in PAGES:
        response = owner.client.get(path)
        assert response.status_code == 404, path
        assert "plan-list" not in page_of(response) and "plan-form" not in page_of(response)
    token = csrf_token(owner.client, "/dashboard")
    for path in ACTIONS:
        assert owner.client.post(path, data={"csrf_token": token, **VALID}).status_code == 404, path
    assert stored_plan(app, "pro").active and stored_plan(app, "gold") is None
    assert audit_actions(app, "plan.archived") == []


def test_anonymous_users_are_sent_to_log_in(app, client):
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    token = csrf_token(client, "/login")
    for path in ACTIONS:
        response = client.post(path, data={"csrf_token": token, **VALID})
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path
    assert stored_plan(app, "pro").active and stored_plan(app, "gold") is None


def test_the_admin_console_links_to_the_plans(admin):
    assert 'href="/admin/plans"' in page_of(admin.client.get("/admin/"))


# -- the list ---------------------------------------------------------------------------------

def test_the_list_shows_every_plan_with_its_subscribers_status_and_sync_state(app, admin):
    with app.app_context():
        factories.make_tenant("pro")
        factories.make_tenant("pro")
        factories.make_tenant("starter")
        db.session.remove()
    admin.post("/admin/plans/enterprise/archive")
    page = page_of(admin.client.get("/admin/plans"))
    assert [cell(page, code, "subscribers") for code in ("free", "starter", "pro", "enterprise")] == \
        ["0", "1", "2", "0"]
    assert "archived" in row(page, "enterprise") and "Unarchive" in row(page, "enterprise")
    assert "on sale" in row(page, "pro") and "Archive" in row(page, "pro")
    assert "Archive" not in row(page, "free")  # the free plan cannot be archived
    assert cell(page, "pro", "sync-state") == "Stripe not configured"
    assert 'id="stripe-not-configured"' in page


# -- create -----------------------------------------------------------------------------------

def test_an_admin_creates_a_plan(app, admin):
    response = admin.create()
    assert response.status_code == 302 and response.headers["Location"] == "/admin/plans"
    plan = stored_plan(app, "gold")
    assert (plan.name, plan.price_cents, plan.currency, plan.interval, plan.included_conversations,
            plan.overage_cents, plan.rate_limit_per_minute, plan.phone_numbers_allowed, plan.trial_days,
            plan.sort_order, plan.active) == ("Gold", 19900, "usd", "month", 20000, 3, 2000, 10, 14, 25, True)
    assert plan.features == ["text", "template", "broadcast", "multi_number"]
    assert plan.description == "For big senders.\r\nWith a second line."
    [entry] = audit_actions(app, "plan.created")
    assert entry.actor == ADMIN_EMAIL and entry.details["plan_code"] == "gold"
    assert "Created plan gold" in entry.summary
    page = page_of(admin.client.get("/admin/plans"))
    assert "Plan gold created." in flashes(page)
    assert "Gold" in row(page, "gold")


def test_an_empty_overage_price_makes_a_hard_cap(app, admin):
    assert admin.create(overage_cents="", features=[], phone_numbers_allowed="1").status_code == 302
    plan = stored_plan(app, "gold")
    assert plan.overage_cents is None and plan.hard_cap and plan.features == []


@pytest.mark.parametrize("changes, field, message", [
    ({"code": "Gold"}, "code", "Lowercase letters, digits and dashes only."),
    ({"code": "gold plan"}, "code", "Lowercase letters, digits and dashes only."),
    ({"code": "gold_1"}, "code", "Lowercase letters, digits and dashes only."),
    ({"code": "-gold"}, "code", "Lowercase letters, digits and dashes only."),
    ({"code": "g" * 41}, "code", "Field cannot be longer than 40 characters."),
    ({"code": ""}, "code", "This field is required."),
    ({"code": "pro"}, "code", "A plan with this code exists already."),
    ({"code": "go\x00ld"}, "code", "Control characters (such as NUL) are not allowed."),
    ({"name": "Gold\x00"}, "name", "Control characters (such as NUL) are not allowed."),
    ({"name": "Gold\x1b[31m"}, "name", "Control characters (such as NUL) are not allowed."),
    ({"name": "G" * 101}, "name", "Field cannot be longer than 100 characters."),
    ({"name": "   "}, "name", "This field is required."),
    ({"description": "a\x00b"}, "description", "Control characters (such as NUL) are not allowed."),
    ({"description": "a\x7fb"}, "description", "Control characters (such as NUL) are not allowed."),
    ({"currency": "us\x00"}, "currency", "Control characters (such as NUL) are not allowed."),
    ({"description": "d" * 2001}, "description", "Field cannot be longer than 2000 characters."),
    ({"price_cents": "-1"}, "price_cents", "Number must be between 0 and 99999999."),
    ({"price_cents": "100000000"}, "price_cents", "Number must be between 0 and 99999999."),
    ({"price_cents": "19.99"}, "price_cents", "Not a valid integer value."),
    ({"price_cents": "1\x00"}, "price_cents", "Not a valid integer value."),
    ({"overage_cents": "-3"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "0"}, "overage_cents", "Must be more than 0 and at most 99999999."),
    ({"overage_cents": "0.000"}, "overage_cents", "Must be more than 0 and at most 99999999."),
    ({"overage_cents": "100000000"}, "overage_cents", "Must be more than 0 and at most 99999999."),
    ({"overage_cents": "99999999.5"}, "overage_cents", "Must be more than 0 and at most 99999999."),
    ({"overage_cents": "1" * 21}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "0.1234567890123"}, "overage_cents", "At most 12 decimal places."),
    ({"overage_cents": "1,5"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "1e3"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "NaN"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "Infinity"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": ".5"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "0.5\x00"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"overage_cents": "１"}, "overage_cents", "A number of cents, such as 3, 0.5 or 1.25."),
    ({"included_conversations": "-5"}, "included_conversations", "Number must be between 0 and 2147483647."),
    ({"included_conversations": str(2**31)}, "included_conversations", "Number must be between 0 and 2147483647."),
    ({"rate_limit_per_minute": "0"}, "rate_limit_per_minute", "Number must be between 1 and 2147483647."),
    ({"phone_numbers_allowed": "-1"}, "phone_numbers_allowed", "Number must be between 1 and 2147483647."),
    ({"trial_days": "731"}, "trial_days", "Number must be between 0 and 730."),
    ({"sort_order": "-1"}, "sort_order", "Number must be between 0 and 2147483647."),
    ({"sort_order": "99999999999999999999"}, "sort_order", "Number must be between 0 and 2147483647."),
    ({"currency": "us"}, "currency", "A three-letter ISO code, such as usd."),
    ({"currency": "usdx"}, "currency", "A three-letter ISO code, such as usd."),
    ({"currency": "u$d"}, "currency", "A three-letter ISO code, such as usd."),
    ({"interval": "fortnight"}, "interval", "Not a valid choice."),
    ({"features": ["text", "teleport"]}, "features", "'teleport' is not a valid choice for this field."),
])
def test_create_refuses_bad_input_next_to_the_field(app, admin, changes, field, message):
    response = admin.create(**changes)
    assert response.status_code == 400
    page = page_of(response)
    errors = field_errors(page)
    assert errors.get(field) == message, errors
    assert list(errors) == [field]
    assert page.count('class="field-error"') == 1  # one reason, said once
    with app.app_context():
        assert db.session.scalar(select(Plan).where(Plan.name.like("G%"), Plan.code != "pro")) is None
        db.session.remove()
    assert audit_actions(app, "plan.created") == []


def test_create_without_a_csrf_token_is_refused(app, admin):
    assert admin.client.post("/admin/plans/new", data=VALID).status_code == 400
    assert stored_plan(app, "gold") is None


# -- edit -------------------------------------------------------------------------------------

def test_an_admin_edits_a_plan(app, admin):
    response = admin.edit("pro", name="Pro 2", price_cents="12900", features=["text", "media", "multi_number"],
                          overage_cents="", code="hacked")
    assert response.status_code == 302
    plan = stored_plan(app, "pro")
    assert (plan.name, plan.price_cents, plan.features, plan.overage_cents) == (
        "Pro 2", 12900, ["text", "media", "multi_number"], None)
    assert stored_plan(app, "hacked") is None  # the code is fixed
    [entry] = audit_actions(app, "plan.updated")
    assert entry.actor == ADMIN_EMAIL and entry.details["plan_code"] == "pro"
    assert entry.details["changes"]["price_cents"] == [9900, 12900]
    assert set(entry.details["changes"]) == {"name", "price_cents", "features", "overage_cents"}


def test_the_edit_form_shows_the_plans_terms(admin):
    page = page_of(admin.client.get("/admin/plans/pro/edit"))
    assert 'name="price_cents"' in page and 'value="9900"' in page
    assert re.search(r'<input checked id="features-\d+" name="features" type="checkbox" value="broadcast">', page)
    assert 'name="code"' not in page


def test_edit_refuses_bad_input_and_changes_nothing(app, admin):
    response = admin.edit("pro", name="Pro\x00", price_cents="-5")
    assert response.status_code == 400
    assert set(field_errors(page_of(response))) == {"name", "price_cents"}
    assert stored_plan(app, "pro").name == "Pro" and stored_plan(app, "pro").price_cents == 9900
    assert audit_actions(app, "plan.updated") == []


def test_the_free_plan_stays_free(app, admin):
    response = admin.edit("free", price_cents="500")
    assert response.status_code == 400
    assert "stays free" in field_errors(page_of(response))["price_cents"]
    assert stored_plan(app, "free").price_cents == 0


def test_an_unknown_plan_is_404(admin):
    assert admin.client.get("/admin/plans/gold/edit").status_code == 404
    assert admin.post("/admin/plans/gold/archive").status_code == 404


# -- archive ----------------------------------------------------------------------------------

def test_an_archived_plan_keeps_its_subscribers_and_is_offered_to_nobody(app, admin, owner):
    with app.app_context():
        subscriber = factories.make_tenant("starter")
        subscriber_id = subscriber.id
        db.session.remove()
    assert 'id="plan-starter"' in page_of(owner.client.get("/billing"))

    response = admin.post("/admin/plans/starter/archive")
    assert response.status_code == 302
    assert stored_plan(app, "starter").active is False
    [entry] = audit_actions(app, "plan.archived")
    assert entry.actor == ADMIN_EMAIL and entry.details["plan_code"] == "starter"

    billing = page_of(owner.client.get("/billing"))
    assert 'id="plan-starter"' not in billing and 'id="plan-pro"' in billing
    assert 'id="plan-starter"' not in page_of(owner.client.get("/"))
    with app.app_context():
        from saas.billing import entitlements
        from saas.tenants.models import Tenant

        assert entitlements.for_tenant(db.session.get(Tenant, subscriber_id)).plan.code == "starter"
        assert plan_on_offer("starter") is None and plan_on_offer("pro").code == "pro"
        tenant = factories.make_tenant("free")
        with pytest.raises(UnknownPlan, match="archived"):
            start_subscription(tenant, "starter")
        db.session.rollback()
        db.session.remove()

    assert admin.post("/admin/plans/starter/unarchive").status_code == 302
    assert stored_plan(app, "starter").active is True
    assert [e.details["plan_code"] for e in audit_actions(app, "plan.unarchived")] == ["starter"]
    assert 'id="plan-starter"' in page_of(owner.client.get("/billing"))


def test_the_free_plan_cannot_be_archived(app, admin):
    response = admin.post("/admin/plans/free/archive")
    assert response.status_code == 302
    assert stored_plan(app, "free").active is True
    assert any("cannot be archived" in f for f in flashes(page_of(admin.client.get("/admin/plans"))))
    assert audit_actions(app, "plan.archived") == []


def test_archive_without_a_csrf_token_is_refused(app, admin):
    assert admin.client.post("/admin/plans/pro/archive").status_code == 400
    assert stored_plan(app, "pro").active is True


# -- with Stripe ------------------------------------------------------------------------------

def test_a_new_plan_is_synced_to_stripe_right_away(app, admin, stripe):
    admin.create()
    plan = stored_plan(app, "gold")
    product = stripe.objects[plan.stripe_product_id]
    assert product["metadata"] == {"app": "relay", "plan_code": "gold"}
    assert stripe.objects[plan.stripe_price_id]["lookup_key"] == "gold"
    assert stripe.objects[plan.stripe_metered_price_id]["lookup_key"] == "gold_overage"
    page = page_of(admin.client.get("/admin/plans"))
    assert cell(page, "gold", "sync-state").startswith("synced")
    assert any(f.startswith(f"Stripe: gold: created product {plan.stripe_product_id}") for f in flashes(page))
    assert [e.details["plan_code"] for e in audit_actions(app, "plan.synced")] == ["gold"]
    assert audit_actions(app, "plan.synced")[0].actor == ADMIN_EMAIL


def test_an_edit_is_synced_to_stripe_right_away(app, admin, stripe):
    admin.post("/admin/plans/pro/sync")
    old = stored_plan(app, "pro").stripe_price_id
    admin.edit("pro", price_cents="12900")
    new = stored_plan(app, "pro").stripe_price_id
    assert new != old and stripe.objects[new]["unit_amount"] == 12900 and stripe.objects[old]["active"] is False
    assert cell(page_of(admin.client.get("/admin/plans")), "pro", "sync-state").startswith("synced")


def test_archiving_a_synced_plan_keeps_its_stripe_prices_active(app, admin, stripe):
    admin.post("/admin/plans/pro/sync")
    stripe.calls.clear()
    admin.post("/admin/plans/pro/archive")
    plan = stored_plan(app, "pro")
    assert stripe.requests("POST") == []
    assert stripe.objects[plan.stripe_price_id]["active"] and stripe.objects[plan.stripe_metered_price_id]["active"]
    assert cell(page_of(admin.client.get("/admin/plans")), "pro", "sync-state").startswith("synced")


def test_a_failed_sync_keeps_the_change_says_so_and_sync_now_recovers(app, admin, stripe):
    stripe.fail("POST", "/v1/prices", status=500)
    response = admin.create()
    assert response.status_code == 302
    plan = stored_plan(app, "gold")
    assert plan is not None and plan.stripe_product_id and plan.stripe_price_id is None  # kept, and what was made
    page = page_of(admin.client.get("/admin/plans"))
    assert any("the sync to Stripe failed" in f and "HTTP 500" in f for f in flashes(page))
    state = cell(page, "gold", "sync-state")
    assert state.startswith("not synced") and "Sync now" in state
    assert 'action="/admin/plans/gold/sync"' in row(page, "gold")
    assert audit_actions(app, "plan.synced") == []

    assert admin.post("/admin/plans/gold/sync").status_code == 302
    plan = stored_plan(app, "gold")
    assert plan.stripe_price_id and plan.stripe_metered_price_id and plan.stripe_sync_error is None
    page = page_of(admin.client.get("/admin/plans"))
    assert cell(page, "gold", "sync-state").startswith("synced")
    assert "Sync now" not in row(page, "gold")
    assert len([p for p in stripe.of_kind("product") if p["metadata"]["plan_code"] == "gold"]) == 1
    assert [e.details["plan_code"] for e in audit_actions(app, "plan.synced")] == ["gold"]


def test_a_plan_edited_while_stripe_is_down_is_listed_not_synced(app, admin, stripe):
    admin.post("/admin/plans/pro/sync")
    stripe.delay("GET", "/v1/products", seconds=3)  # the client gives up after 2 s
    admin.edit("pro", name="Pro 2")
    assert stored_plan(app, "pro").name == "Pro 2"
    page = page_of(admin.client.get("/admin/plans"))
    assert cell(page, "pro", "sync-state").startswith("not synced")
    assert any("could not reach Stripe" in f for f in flashes(page))
