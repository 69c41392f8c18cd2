"""Buying and changing plans through Stripe (against the loopback fake), and the API's 402 for unpaid rights."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from saas.billing.catalog import plan_by_code
from saas.billing.models import Plan, Subscription
from saas.billing.services import apply_stripe_subscription
from saas.extensions import db
from saas.tenants.models import Tenant, User
from saas.timeutil import from_timestamp, utcnow
from tests.conftest import AuthActions, csrf_token
from tests.factories import sender, set_quota

EMAIL = "owner@acme.example.com"
ATTEMPT = re.compile(r'<input type="hidden" name="attempt" value="([0-9a-f]+)">')
HIDDEN = re.compile(r'<input[^>]*name="([a-z_]+)"[^>]*type="hidden"[^>]*value="([^"]*)"'
                    r'|<input[^>]*type="hidden"[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"')


# -- helpers ---------------------------------------------------------------------------------

def text_of(response) -> str:
    return response.get_data(as_text=True)


def sync(stripe, *codes):
    """What ``flask plans sync`` leaves behind: each plan's flat (and metered) price at Stripe, ids on the plan."""
    for code in codes:
        plan = plan_by_code(code)
        flat = stripe.price({"product": f"prod_{code}", "unit_amount": plan.price_cents, "currency": "usd",
                             "recurring": {"interval": "month"}, "lookup_key": code, "nickname": plan.name,
                             "metadata": {"app": "relay", "plan_code": code, "kind": "flat"}})
        plan.stripe_price_id = flat["id"]
        if plan.overage_cents is not None:
            metered = stripe.price({"product": f"prod_{code}", "unit_amount_decimal": str(plan.overage_cents),
                                    "currency": "usd", "lookup_key": f"{code}_overage",
                                    "recurring": {"interval": "month", "usage_type": "metered",
                                                  "meter": "meter_conversations"},
                                    "metadata": {"app": "relay", "plan_code": code, "kind": "overage"}})
            plan.stripe_metered_price_id = metered["id"]
    db.session.commit()


def tenant_of(app, email=EMAIL) -> Tenant:
    with app.app_context():
        tenant = db.session.scalar(select(User).where(User.email == email)).tenant
        db.session.expunge_all()
    return tenant


def held(app, tenant_id) -> Subscription:
    """The tenant's subscription row, read fresh."""
    with app.app_context():
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
        subscription.plan  # loaded before the session goes
        db.session.expunge_all()
    return subscription


def customer_of(app, tenant_id) -> str | None:
    with app.app_context():
        return db.session.scalar(select(Tenant.stripe_customer_id).where(Tenant.id == tenant_id))


def attempt_on(client) -> str:
    match = ATTEMPT.search(text_of(client.get("/billing")))
    assert match, "no plan form on the billing page"
    return match.group(1)


def choose(client, code, attempt=None):
    """Press a plan's button on the billing page (a POST with CSRF token and the page's attempt id)."""
    attempt = attempt or attempt_on(client)
    return client.post("/billing/checkout", data={"csrf_token": csrf_token(client, "/billing"), "plan": code,
                                                  "attempt": attempt})


def flashes(response) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="flash error" role="status">([^<]*)</div>',
                                                   text_of(response))]


def session_id_of(location: str) -> str:
    return location.rsplit("/", 1)[-1]


@pytest.fixture
def owner(app, auth):
    assert auth.signup(email=EMAIL).status_code == 303
    return auth.client


@pytest.fixture
def subscriber(app, stripe, owner):
    """The owner's tenant on Pro through a completed Checkout (applied by the success page)."""
    with app.app_context():
        sync(stripe, "free", "starter", "pro", "enterprise")
    response = choose(owner, "pro")
    session_id = session_id_of(response.headers["Location"])
    stripe.complete_checkout(session_id)
    assert "You are on the Pro plan" in text_of(owner.get(f"/billing/success?session_id={session_id}"))
    stripe.calls.clear()
    return owner


# -- Checkout --------------------------------------------------------------------------------

def test_checkout_session_carries_prices_customer_reference_and_metadata(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
        pro = plan_by_code("pro")
        flat, metered = pro.stripe_price_id, pro.stripe_metered_price_id
    tenant = tenant_of(app)
    attempt = attempt_on(owner)

    response = choose(owner, "pro", attempt)

    assert response.status_code == 303
    [created] = stripe.requests("POST", "/v1/checkout/sessions")
    session = stripe.get(created_id := session_id_of(response.headers["Location"]))
    assert response.headers["Location"] == session["url"] == f"{stripe.url}/checkout/{created_id}"
    [customer_call] = stripe.requests("POST", "/v1/customers")
    customer_id = customer_of(app, tenant.id)
    assert customer_call.idempotency_key == f"customer-tenant-{tenant.id}"
    assert customer_call.params == {"name": "Acme Ltd", "email": EMAIL,
                                    "metadata": {"app": "relay", "tenant_id": str(tenant.id)}}
    assert stripe.get(customer_id, "customer")["metadata"]["tenant_id"] == str(tenant.id)
    assert created.idempotency_key == f"checkout-tenant-{tenant.id}-pro-{attempt}"
    assert created.params == {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(tenant.id),
        "line_items": [{"price": flat, "quantity": "1"}, {"price": metered}],
        "subscription_data": {"metadata": {"app": "relay", "tenant_id": str(tenant.id), "plan_code": "pro"}},
        "metadata": {"app": "relay", "tenant_id": str(tenant.id), "plan_code": "pro"},
        "success_url": "http://localhost/billing/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://localhost/billing/cancel",
    }
    # Nothing is bought until Stripe says so.
    assert held(app, tenant.id).plan.code == "free"


def test_second_checkout_reuses_the_customer(app, stripe, owner):
    with app.app_context():
        sync(stripe, "starter", "pro")
    first = choose(owner, "pro")
    second = choose(owner, "starter")
    assert first.status_code == second.status_code == 303
    assert len(stripe.requests("POST", "/v1/customers")) == 1
    sessions = stripe.requests("POST", "/v1/checkout/sessions")
    assert len(sessions) == 2
    assert sessions[0].params["customer"] == sessions[1].params["customer"] == customer_of(app, tenant_of(app).id)
    assert sessions[1].params["line_items"][0]["price"] != sessions[0].params["line_items"][0]["price"]


def test_the_same_form_sent_twice_opens_one_session(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    attempt = attempt_on(owner)
    first, second = choose(owner, "pro", attempt), choose(owner, "pro", attempt)
    assert first.headers["Location"] == second.headers["Location"]
    assert len(stripe.of_kind("checkout.session")) == 1


def test_trial_days_are_offered_only_when_the_plan_has_them(app, stripe, owner):
    with app.app_context():
        sync(stripe, "starter", "pro")
        plan_by_code("pro").trial_days = 14
        db.session.commit()
    assert "14-day free trial" in text_of(owner.get("/billing"))
    choose(owner, "pro")
    choose(owner, "starter")
    pro, starter = stripe.requests("POST", "/v1/checkout/sessions")
    assert pro.params["subscription_data"]["trial_period_days"] == "14"
    assert "trial_period_days" not in starter.params["subscription_data"]


def test_no_trial_for_a_tenant_that_had_a_paid_subscription(app, stripe, owner):
    tenant = tenant_of(app)
    with app.app_context():
        sync(stripe, "pro")
        plan_by_code("pro").trial_days = 14
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
        subscription.stripe_subscription_id = "sub_ended_long_ago"
        subscription.status = "canceled"
        db.session.commit()
    assert "14-day free trial" not in text_of(owner.get("/billing"))
    assert choose(owner, "pro").status_code == 303
    [session] = stripe.requests("POST", "/v1/checkout/sessions")
    assert "trial_period_days" not in session.params["subscription_data"]


def test_a_hard_capped_paid_plan_sells_only_its_flat_price(app, stripe, owner):
    with app.app_context():
        db.session.add(Plan(code="basic", name="Basic", price_cents=900, currency="usd", interval="month",
                            included_conversations=500, overage_cents=None, features=["text"], active=True,
                            sort_order=5))
        db.session.commit()
        sync(stripe, "basic")
        flat = plan_by_code("basic").stripe_price_id
    assert choose(owner, "basic").status_code == 303
    [session] = stripe.requests("POST", "/v1/checkout/sessions")
    assert session.params["line_items"] == [{"price": flat, "quantity": "1"}]


def test_return_urls_use_the_public_base_url(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    app.config["PUBLIC_BASE_URL"] = "https://relay.example.com/"
    try:
        choose(owner, "pro")
    finally:
        app.config["PUBLIC_BASE_URL"] = None
    [session] = stripe.requests("POST", "/v1/checkout/sessions")
    assert session.params["success_url"] == "https://relay.example.com/billing/success?session_id={CHECKOUT_SESSION_ID}"
    assert session.params["cancel_url"] == "https://relay.example.com/billing/cancel"


def test_checkout_needs_the_csrf_token(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    response = owner.post("/billing/checkout", data={"plan": "pro", "attempt": "0" * 16})
    assert response.status_code == 400
    assert stripe.requests("POST") == []


# -- back from Checkout ----------------------------------------------------------------------

def test_success_page_applies_the_completed_session_at_once(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    tenant = tenant_of(app)
    session_id = session_id_of(choose(owner, "pro").headers["Location"])
    stripe.complete_checkout(session_id)  # no webhook is delivered

    response = owner.get(f"/billing/success?session_id={session_id}")

    assert response.status_code == 200
    page = text_of(response)
    assert "You are on the Pro plan" in page
    subscription = held(app, tenant.id)
    sub = stripe.get(stripe.get(session_id)["subscription"])
    assert (subscription.plan.code, subscription.status) == ("pro", "active")
    assert subscription.stripe_subscription_id == sub["id"]
    dashboard = text_of(owner.get("/dashboard"))
    assert '<strong id="plan-name">Pro</strong>' in dashboard
    assert "of 5,000 conversations" in dashboard


def test_the_webhook_after_the_success_page_changes_nothing(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    tenant = tenant_of(app)
    session_id = session_id_of(choose(owner, "pro").headers["Location"])
    events = stripe.complete_checkout(session_id)
    owner.get(f"/billing/success?session_id={session_id}")
    with app.app_context():
        sub = events[1]["data"]["object"]
        applied = apply_stripe_subscription(sub, as_of=from_timestamp(events[1]["created"]))
    assert not applied.changed
    assert held(app, tenant.id).plan.code == "pro"


def test_success_page_of_an_unfinished_session_says_processing(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    tenant = tenant_of(app)
    session_id = session_id_of(choose(owner, "pro").headers["Location"])
    response = owner.get(f"/billing/success?session_id={session_id}")
    assert response.status_code == 200
    assert "Your payment is processing" in text_of(response)
    assert held(app, tenant.id).plan.code == "free"
    assert stripe.requests("GET", "/v1/subscriptions") == []


def test_success_page_of_an_expired_session_says_so(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    session_id = session_id_of(choose(owner, "pro").headers["Location"])
    stripe.get(session_id)["status"] = "expired"
    response = owner.get(f"/billing/success?session_id={session_id}")
    assert response.status_code == 200
    assert "This checkout has expired" in text_of(response)
    assert held(app, tenant_of(app).id).plan.code == "free"


def test_a_session_of_another_tenant_is_404(app, stripe, owner, client):
    with app.app_context():
        sync(stripe, "pro")
    # Another tenant buys Pro in another browser.
    other = app.test_client()
    AuthActions(other).signup(company="Other Co", email="boss@other.example.com")
    theirs = session_id_of(choose(other, "pro").headers["Location"])
    stripe.complete_checkout(theirs)
    mine = tenant_of(app)

    response = owner.get(f"/billing/success?session_id={theirs}")

    assert response.status_code == 404
    assert held(app, mine.id).plan.code == "free"
    assert held(app, tenant_of(app, "boss@other.example.com").id).plan.code == "free"
    assert stripe.requests("GET", "/v1/subscriptions") == []


@pytest.mark.parametrize("session_id", ["cs_fake999999", "nope", "", "cs_" + "x" * 300])
def test_an_unknown_or_malformed_session_is_404(app, stripe, owner, session_id):
    assert owner.get(f"/billing/success?session_id={session_id}").status_code == 404


def test_cancel_page_says_nothing_changed(app, stripe, owner):
    response = owner.get("/billing/cancel")
    assert response.status_code == 200
    assert "Nothing was charged and your plan is unchanged" in text_of(response)


# -- the Customer Portal -----------------------------------------------------------------------

def test_manage_billing_opens_a_portal_session_for_the_customer(app, stripe, subscriber):
    customer_id = customer_of(app, tenant_of(app).id)
    page = text_of(subscriber.get("/billing"))
    assert 'id="manage-billing"' in page

    response = subscriber.post("/billing/portal", data={"csrf_token": csrf_token(subscriber, "/billing")})

    assert response.status_code == 303
    [call] = stripe.requests("POST", "/v1/billing_portal/sessions")
    assert call.params == {"customer": customer_id, "return_url": "http://localhost/billing"}
    assert response.headers["Location"] == f"{stripe.url}/portal/{customer_id}"


def test_no_portal_without_a_customer(app, stripe, owner):
    assert 'id="manage-billing"' not in text_of(owner.get("/billing"))
    response = owner.post("/billing/portal", data={"csrf_token": csrf_token(owner, "/billing")},
                          follow_redirects=True)
    assert response.status_code == 200
    assert any("no billing account yet" in m for m in flashes(response))
    assert stripe.requests("POST") == []


def test_downgrade_to_free_is_a_cancellation_in_the_portal(app, stripe, subscriber):
    page = text_of(subscriber.get("/billing"))
    free = re.search(r'<article class="" id="plan-free">(.*?)</article>', page, re.S).group(1)
    assert "cancel your subscription in the billing portal" in free
    assert 'action="/billing/portal"' in free
    response = subscriber.post("/billing/checkout", data={
        "csrf_token": csrf_token(subscriber, "/billing"), "plan": "free", "attempt": "a" * 16},
        follow_redirects=True)
    assert any("cancel your subscription in the billing portal" in m for m in flashes(response))
    assert stripe.requests("POST") == []


# -- plan changes ----------------------------------------------------------------------------

def hidden_fields(page: str) -> dict:
    fields = {}
    for match in HIDDEN.finditer(page):
        name, value = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        fields[name] = html.unescape(value)
    return fields


def test_plan_change_shows_stripes_preview_then_updates_with_prorations(app, stripe, subscriber):
    tenant = tenant_of(app)
    sub_id = held(app, tenant.id).stripe_subscription_id
    items = stripe.get(sub_id)["items"]["data"]
    flat_item = next(i["id"] for i in items if i["price"]["recurring"]["usage_type"] == "licensed")
    metered_item = next(i["id"] for i in items if i["price"]["recurring"]["usage_type"] == "metered")
    with app.app_context():
        enterprise = plan_by_code("enterprise")
        new_flat, new_metered = enterprise.stripe_price_id, enterprise.stripe_metered_price_id
    billing = text_of(subscriber.get("/billing"))
    assert 'href="/billing/change/enterprise"' in billing
    assert stripe.requests("POST", "/v1/checkout/sessions") == []

    preview = subscriber.get("/billing/change/enterprise")

    assert preview.status_code == 200
    page = text_of(preview)
    [call] = stripe.requests("POST", "/v1/invoices/create_preview")
    expected_items = [{"id": flat_item, "price": new_flat}, {"id": metered_item, "price": new_metered}]
    proration_date = call.params["subscription_details"]["proration_date"]
    assert call.params == {"customer": customer_of(app, tenant.id), "subscription": sub_id, "subscription_details": {
        "items": expected_items, "proration_behavior": "create_prorations", "proration_date": proration_date}}
    # The fake prorates half a period: -$49.50 for Pro's unused half, +$249.50 for Enterprise's.
    assert "Unused time on the current plan" in page and "−$49.50" in page and "$249.50" in page
    assert re.search(r'id="proration-total">\$200.00<', page)
    assert held(app, tenant.id).plan.code == "pro"  # a preview changes nothing
    assert stripe.requests("POST", "/v1/subscriptions") == []

    form = hidden_fields(page)
    assert form["plan"] == "enterprise" and form["proration_date"] == proration_date
    response = subscriber.post("/billing/change/enterprise", data=form)

    assert response.status_code == 303 and response.headers["Location"] == "/billing"
    [update] = stripe.requests("POST", f"/v1/subscriptions/{sub_id}")
    assert update.params == {"items": expected_items, "proration_behavior": "create_prorations",
                             "proration_date": proration_date,
                             "metadata": {"app": "relay", "tenant_id": str(tenant.id), "plan_code": "enterprise"}}
    assert update.idempotency_key == f"plan-change-{sub_id}-enterprise-{form['attempt']}"
    assert held(app, tenant.id).plan.code == "enterprise"
    page = text_of(subscriber.get("/billing"))
    assert "You are now on the Enterprise plan." in page
    assert '<strong id="plan-name">Enterprise</strong>' in page


def test_switching_to_a_plan_without_overage_removes_the_metered_item(app, stripe, subscriber):
    with app.app_context():
        db.session.add(Plan(code="basic", name="Basic", price_cents=900, currency="usd", interval="month",
                            included_conversations=500, overage_cents=None, features=["text"], active=True,
                            sort_order=5))
        db.session.commit()
        sync(stripe, "basic")
    tenant = tenant_of(app)
    sub_id = held(app, tenant.id).stripe_subscription_id
    metered_item = held(app, tenant.id).stripe_metered_item_id
    form = hidden_fields(text_of(subscriber.get("/billing/change/basic")))
    assert subscriber.post("/billing/change/basic", data=form).status_code == 303
    [update] = stripe.requests("POST", f"/v1/subscriptions/{sub_id}")
    assert update.params["items"][1] == {"id": metered_item, "deleted": "true"}
    subscription = held(app, tenant.id)
    assert subscription.plan.code == "basic" and subscription.stripe_metered_item_id is None


def test_a_subscriber_does_not_go_to_checkout_again(app, stripe, subscriber):
    response = choose(subscriber, "enterprise", "b" * 16)
    assert response.status_code == 303 and response.headers["Location"] == "/billing"
    assert stripe.requests("POST", "/v1/checkout/sessions") == []


def test_an_old_preview_is_previewed_again_not_confirmed(app, stripe, subscriber):
    form = hidden_fields(text_of(subscriber.get("/billing/change/enterprise")))
    form["proration_date"] = str(int((utcnow() - timedelta(hours=2)).timestamp()))
    response = subscriber.post("/billing/change/enterprise", data=form)
    assert response.status_code == 303 and response.headers["Location"] == "/billing/change/enterprise"
    assert stripe.requests("POST", "/v1/subscriptions") == []


# -- invoices --------------------------------------------------------------------------------

def test_past_invoices_are_listed_with_links_to_stripe(app, stripe, subscriber):
    customer_id = customer_of(app, tenant_of(app).id)
    [invoice] = stripe.of_kind("invoice")
    page = text_of(subscriber.get("/billing"))
    [call] = stripe.requests("GET", "/v1/invoices")
    assert call.params["customer"] == customer_id
    table = re.search(r'<table id="invoices">(.*?)</table>', page, re.S).group(1)
    assert invoice["number"] in table
    assert from_timestamp(invoice["created"]).strftime("%Y-%m-%d") in table
    assert "$99.00" in table and ">paid<" in table
    assert f'href="{invoice["hosted_invoice_url"]}"' in table
    assert f'href="{invoice["invoice_pdf"]}"' in table


# -- what is not on sale -----------------------------------------------------------------------

def test_without_stripe_the_page_says_an_admin_assigns_plans(app, owner):
    assert app.extensions["stripe"] is None
    page = text_of(owner.get("/billing"))
    assert 'id="billing-not-configured"' in page
    assert "A platform admin can move your account to another plan" in page
    assert 'action="/billing/checkout"' not in page
    response = owner.post("/billing/checkout", data={"csrf_token": csrf_token(owner, "/billing"), "plan": "pro",
                                                     "attempt": "c" * 16}, follow_redirects=True)
    assert response.status_code == 200
    assert any("not configured" in m for m in flashes(response))


def test_a_plan_without_stripe_prices_is_not_for_sale_online(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
    page = text_of(owner.get("/billing"))
    starter = re.search(r'id="plan-starter">(.*?)</article>', page, re.S).group(1)
    assert "Not available for online purchase yet" in starter
    assert "<form" not in starter
    stripe.calls.clear()
    response = choose(owner, "starter", "d" * 16)
    assert response.status_code == 303
    assert stripe.calls == []
    assert any("not available for online purchase yet" in m for m in flashes(owner.get("/billing")))


def test_an_archived_plan_is_neither_shown_nor_sold(app, stripe, owner):
    with app.app_context():
        sync(stripe, "pro")
        plan_by_code("pro").active = False
        db.session.commit()
    assert 'id="plan-pro"' not in text_of(owner.get("/billing"))
    stripe.calls.clear()
    response = choose(owner, "pro", "e" * 16)
    assert response.status_code == 303 and response.headers["Location"] == "/billing"
    assert stripe.calls == []
    assert held(app, tenant_of(app).id).plan.code == "free"


def test_the_current_plan_is_not_sold_again(app, stripe, subscriber):
    assert re.findall(r'<article class="current" id="plan-([a-z]+)">', text_of(subscriber.get("/billing"))) == ["pro"]
    assert subscriber.get("/billing/change/pro").status_code == 303
    assert stripe.requests("POST") == []


# -- Stripe failing ----------------------------------------------------------------------------

def _checkout(app, stripe, client):
    return choose(client, "pro")


def _success(app, stripe, client):
    session_id = session_id_of(choose(client, "pro").headers["Location"])
    stripe.complete_checkout(session_id)
    return client.get(f"/billing/success?session_id={session_id}")


def _portal(app, stripe, client):
    return client.post("/billing/portal", data={"csrf_token": csrf_token(client, "/billing")})


def _preview(app, stripe, client):
    return client.get("/billing/change/enterprise")


def _change(app, stripe, client):
    form = hidden_fields(text_of(client.get("/billing/change/enterprise")))
    return client.post("/billing/change/enterprise", data=form)


def _billing_page(app, stripe, client):
    return client.get("/billing")


# (what the tenant does, the Stripe call that fails, whether the tenant is a subscriber already)
FAILURES = [
    pytest.param(_checkout, "POST", "/v1/customers", False, id="customer-create"),
    pytest.param(_checkout, "POST", "/v1/checkout/sessions", False, id="checkout-session-create"),
    pytest.param(_success, "GET", "/v1/checkout/sessions/", False, id="checkout-session-read"),
    pytest.param(_success, "GET", "/v1/subscriptions/", False, id="subscription-read-after-checkout"),
    pytest.param(_portal, "POST", "/v1/billing_portal/sessions", True, id="portal-session-create"),
    pytest.param(_preview, "GET", "/v1/subscriptions/", True, id="subscription-read-for-preview"),
    pytest.param(_preview, "POST", "/v1/invoices/create_preview", True, id="invoice-preview"),
    pytest.param(_change, "POST", "/v1/subscriptions/", True, id="subscription-update"),
    pytest.param(_billing_page, "GET", "/v1/invoices", True, id="invoice-list"),
]


@pytest.mark.parametrize("how", ["error", "timeout"])
@pytest.mark.parametrize("action, method, path, subscribed", FAILURES)
def test_stripe_failing_shows_a_message_and_changes_nothing(app, stripe, owner, action, method, path, subscribed,
                                                            how):
    with app.app_context():
        sync(stripe, "free", "starter", "pro", "enterprise")
    tenant = tenant_of(app)
    if subscribed:
        session_id = session_id_of(choose(owner, "pro").headers["Location"])
        stripe.complete_checkout(session_id)
        assert owner.get(f"/billing/success?session_id={session_id}").status_code == 200
    before = held(app, tenant.id)
    customer_before = customer_of(app, tenant.id)
    if how == "error":
        stripe.fail(method, path, status=500)
    else:
        stripe.delay(method, path, seconds=3)  # the app's client gives up after 2 s

    response = action(app, stripe, owner)

    assert response.status_code in (200, 303), response.status_code
    page = owner.get(response.headers["Location"]) if response.status_code == 303 else response
    assert page.status_code == 200
    if action is _billing_page:
        assert 'id="invoices-unavailable"' in text_of(page)
    else:
        assert any("The payment provider could not be reached. Nothing was changed" in m for m in flashes(page))
    after = held(app, tenant.id)
    assert (after.plan_id, after.status, after.stripe_subscription_id, after.stripe_price_id) == (
        before.plan_id, before.status, before.stripe_subscription_id, before.stripe_price_id)
    if path == "/v1/customers":
        assert customer_of(app, tenant.id) is None and stripe.requests("POST", "/v1/checkout/sessions") == []
    else:
        assert customer_of(app, tenant.id) == (customer_before or customer_of(app, tenant.id))


# -- the API when paid rights are withheld ----------------------------------------------------

IMAGE = {"messaging_product": "whatsapp", "to": "15551234567", "type": "image",
         "image": {"link": "https://cdn.example.com/a.png"}}


def set_status(app, tenant_id, status, *, past_due_days=0):
    with app.app_context():
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id))
        subscription.status = status
        subscription.past_due_since = utcnow() - timedelta(days=past_due_days) if status == "past_due" else None
        db.session.commit()


@pytest.mark.parametrize("plan, status, withheld", [
    ("pro", "active", False), ("pro", "trialing", False), ("pro", "past_due", False), ("pro", "unpaid", True),
    ("pro", "canceled", True), ("free", "canceled", False), ("free", "unpaid", False)])
def test_rights_are_withheld_only_when_a_paid_plan_lapsed(ctx, plan, status, withheld):
    from saas.billing import entitlements
    from tests.factories import make_tenant

    tenant = make_tenant(plan)
    subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
    subscription.status = status
    subscription.past_due_since = utcnow() if status == "past_due" else None
    db.session.commit()
    assert entitlements.for_tenant(tenant).withheld is withheld


@pytest.mark.parametrize("status, past_due_days", [
    ("unpaid", 0), ("canceled", 0), ("incomplete", 0), ("incomplete_expired", 0), ("paused", 0), ("past_due", 30)])
def test_a_paid_feature_is_402_payment_required_when_payment_lapsed(app, client, status, past_due_days):
    pro = sender(client, "pro")
    set_status(app, pro.tenant_id, status, past_due_days=past_due_days)

    response = pro.send(payload=IMAGE)

    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["reason"] == "payment_required" and error["code"] == 4021
    assert error["type"] == "OAuthException" and error["error_data"]["messaging_product"] == "whatsapp"
    assert error["upgrade_url"] == "http://localhost/billing"
    assert error["details"]["plan"] == "pro" and error["details"]["status"] == status
    assert error["details"]["feature"] == "media"


def test_v1_answers_402_payment_required_in_its_envelope(app, client):
    pro = sender(client, "pro")
    set_status(app, pro.tenant_id, "unpaid")
    response = client.post("/api/v1/messages", headers=pro.headers, json={
        "messaging_product": "whatsapp", "to": "15551234567", "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US"}}})
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "payment_required"
    assert error["upgrade_url"] == "http://localhost/billing"
    assert "Update your payment method" in error["message"]


def test_within_the_grace_period_the_paid_feature_still_works(app, client):
    pro = sender(client, "pro")
    set_status(app, pro.tenant_id, "past_due", past_due_days=1)
    assert pro.send(payload=IMAGE).status_code == 200


def test_a_feature_no_plan_held_includes_stays_403_feature_not_in_plan(app, client):
    free = sender(client, "free")
    response = free.send(payload=IMAGE)
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["reason"] == "feature_not_in_plan" and error["upgrade_url"] == "http://localhost/billing"


def test_a_feature_the_lapsed_plan_lacks_too_is_403_not_402(app, client):
    starter = sender(client, "starter")
    set_status(app, starter.tenant_id, "unpaid")
    response = starter.send(payload={"messaging_product": "whatsapp", "to": "15551234567", "type": "interactive",
                                     "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {
                                         "buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}})
    assert response.status_code == 403
    assert response.get_json()["error"]["reason"] == "feature_not_in_plan"


def test_a_conversation_past_the_free_cap_is_402_payment_required_when_the_paid_plan_allows_it(app, client):
    pro = sender(client, "pro")
    with app.app_context():
        set_quota("free", 1)
    set_status(app, pro.tenant_id, "canceled")
    assert pro.send(to="15551230001").status_code == 200
    response = pro.send(to="15551230002")
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["reason"] == "payment_required" and error["upgrade_url"] == "http://localhost/billing"
    assert (error["details"]["quota"], error["details"]["used"]) == (1, 1)


def test_the_free_cap_of_a_free_tenant_stays_quota_exceeded(app, client):
    free = sender(client, "free")
    with app.app_context():
        set_quota("free", 1)
    assert free.send(to="15551230001").status_code == 200
    response = free.send(to="15551230002")
    assert response.status_code == 402
    assert response.get_json()["error"]["reason"] == "quota_exceeded"


def test_past_the_lapsed_plans_own_cap_it_stays_quota_exceeded(app, client):
    with app.app_context():
        db.session.add(Plan(code="basic", name="Basic", price_cents=900, currency="usd", interval="month",
                            included_conversations=1, overage_cents=None, features=["text"], active=True))
        db.session.commit()
        set_quota("free", 1)
    basic = sender(client, "basic")
    set_status(app, basic.tenant_id, "unpaid")
    assert basic.send(to="15551230001").status_code == 200
    response = basic.send(to="15551230002")
    assert response.status_code == 402
    assert response.get_json()["error"]["reason"] == "quota_exceeded"


# -- the way out, in the header and on the billing page ----------------------------------------

def test_past_due_offers_to_update_the_card(app, stripe, subscriber):
    tenant = tenant_of(app)
    set_status(app, tenant.id, "past_due")
    for path in ("/dashboard", "/billing"):
        page = text_of(subscriber.get(path))
        notice = re.search(r'<div class="notice" role="alert" id="billing-notice">(.*?)</div>', page, re.S).group(1)
        assert "Your last payment failed" in notice
        assert 'action="/billing/portal"' in notice and "Update your card" in notice
    # Said once on the billing page too: in the header's notice, not again in the page.
    assert text_of(subscriber.get("/billing")).count('<div class="notice" role="alert"') == 1
    response = subscriber.post("/billing/portal", data={"csrf_token": csrf_token(subscriber, "/billing")})
    assert response.headers["Location"].startswith(f"{stripe.url}/portal/")


@pytest.mark.parametrize("status", ["unpaid", "canceled", "incomplete_expired"])
def test_lapsed_subscriptions_offer_to_resubscribe(app, stripe, subscriber, status):
    tenant = tenant_of(app)
    set_status(app, tenant.id, status)
    page = text_of(subscriber.get("/dashboard"))
    notice = re.search(r'id="billing-notice">(.*?)</div>', page, re.S).group(1)
    assert "free plan limits apply" in notice
    assert 'href="/billing#plans"' in notice and "Resubscribe" in notice
    billing = text_of(subscriber.get("/billing"))
    pro = re.search(r'id="plan-pro">(.*?)</article>', billing, re.S).group(1)
    assert 'action="/billing/checkout"' in pro and "Resubscribe to Pro" in pro
    assert choose(subscriber, "pro").headers["Location"].startswith(f"{stripe.url}/checkout/")


def test_without_stripe_the_notice_links_to_the_billing_page(app, client, auth):
    auth.signup(email=EMAIL)
    tenant = tenant_of(app)
    with app.app_context():
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
        subscription.plan_id = plan_by_code("pro").id
        db.session.commit()
    set_status(app, tenant.id, "unpaid")
    notice = re.search(r'id="billing-notice">(.*?)</div>', text_of(client.get("/dashboard")), re.S).group(1)
    assert "Resubscribe" not in notice and 'href="/billing"' in notice
