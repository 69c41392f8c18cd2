"""Plans billed per message, made and edited in the admin's plan form."""
from __future__ import annotations

import re

import pytest

from saas.extensions import db
from tests.admin.test_plans import admin, field_errors, page_of, stored_plan  # noqa: F401

PER_MESSAGE = {"code": "bulk", "name": "Bulk", "description": "", "price_cents": "4900", "currency": "usd",
               "interval": "month", "billing_unit": "messages", "included_conversations": "0",
               "included_messages": "3000", "message_categories": ["utility", "marketing"], "overage_cents": "0.8",
               "rate_limit_per_minute": "600", "phone_numbers_allowed": "1", "features": ["text", "template"],
               "trial_days": "0", "sort_order": "15"}


def test_an_admin_creates_a_plan_billed_per_message(app, admin):
    response = admin.post("/admin/plans/new", PER_MESSAGE)
    assert response.status_code == 302, field_errors(page_of(response))
    plan = stored_plan(app, "bulk")
    assert (plan.billing_unit, plan.included_messages, plan.per_message, plan.included_units) == (
        "messages", 3000, True, 3000)
    # In the catalogue's order, whatever order the boxes were ticked in.
    assert plan.message_categories == ["marketing", "utility"]
    listing = page_of(admin.client.get("/admin/plans"))
    assert "3,000 marketing/utility messages" in listing
    assert "marketing/utility messages included" in page_of(admin.client.get("/admin/"))


def test_the_edit_form_shows_a_message_plans_terms(app, admin):
    assert admin.post("/admin/plans/new", PER_MESSAGE).status_code == 302
    page = page_of(admin.client.get("/admin/plans/bulk/edit"))
    assert '<option selected value="messages">' in page
    assert 'id="included_messages" max="2147483647" min="0" name="included_messages" type="number" value="3000"' in page
    assert 'checked id="message_categories-0" name="message_categories" type="checkbox" value="marketing"' in page


@pytest.mark.parametrize("changes, message", [
    ({"message_categories": []}, "A plan billed per message prices at least one category: tick one or more."),
    ({"billing_unit": "conversations"},
     "Categories are priced only by plans billed per message: untick them, or bill per message."),
])
def test_the_unit_and_its_categories_must_agree(app, admin, changes, message):
    response = admin.post("/admin/plans/new", {**PER_MESSAGE, **changes})
    assert response.status_code == 400
    assert field_errors(page_of(response)) == {"message_categories": message}
    assert stored_plan(app, "bulk") is None


@pytest.mark.parametrize("changes, field, message", [
    ({"billing_unit": "seats"}, "billing_unit", "Not a valid choice."),
    ({"message_categories": ["marketing", "spam"]}, "message_categories",
     "'spam' is not a valid choice for this field."),
    ({"included_messages": "-1"}, "included_messages", "Number must be between 0 and 2147483647."),
    ({"included_messages": str(2**31)}, "included_messages", "Number must be between 0 and 2147483647."),
])
def test_message_terms_are_bounded_next_to_the_field(app, admin, changes, field, message):
    response = admin.post("/admin/plans/new", {**PER_MESSAGE, **changes})
    assert response.status_code == 400
    assert field_errors(page_of(response)) == {field: message}
    assert stored_plan(app, "bulk") is None


def test_a_conversation_plan_becomes_a_message_plan_by_edit(app, admin):
    response = admin.edit("starter", billing_unit="messages", included_messages="500",
                          message_categories=["authentication"])
    assert response.status_code == 302, field_errors(page_of(response))
    plan = stored_plan(app, "starter")
    assert (plan.billing_unit, plan.included_messages, plan.message_categories) == (
        "messages", 500, ["authentication"])
    assert plan.included_conversations == 1000  # kept, unused while messages are priced


# -- what the console says of a plan's unit -------------------------------------------------------

def test_the_price_past_the_quota_is_labelled_per_unit_of_what_the_plan_bills(app, admin):
    assert "Price per extra conversation, in cents" in page_of(admin.client.get("/admin/plans/new"))
    assert admin.post("/admin/plans/new", PER_MESSAGE).status_code == 302
    page = page_of(admin.client.get("/admin/plans/bulk/edit"))
    assert "Price per extra message, in cents" in page and "Price per extra conversation" not in page
    # Sent back with an error, the form says what it was sent with.
    refused = admin.post("/admin/plans/new", {**PER_MESSAGE, "code": "bulk-2", "message_categories": []})
    assert refused.status_code == 400 and "Price per extra message, in cents" in page_of(refused)


def test_the_lists_say_which_unit_each_plan_and_tenant_counts(app, admin):
    from tests.admin.test_tenants import tenant_rows
    from tests.factories import make_tenant

    assert admin.post("/admin/plans/new", PER_MESSAGE).status_code == 302
    with app.app_context():
        bulk, starter = make_tenant("bulk"), make_tenant("starter")
        slugs = (bulk.slug, starter.slug)
        db.session.remove()
    listing = page_of(admin.client.get("/admin/plans"))
    assert re.search(r'data-label="Included">\s*1,000 conversations\s*<br>', listing)
    rows = tenant_rows(page_of(admin.client.get("/admin/tenants")))
    assert [rows[slug][6] for slug in slugs] == ["0 / 3000 messages", "0 / 1000 conversations"]
    assert "<th>Usage</th>" in page_of(admin.client.get("/admin/tenants"))


def test_a_plan_paid_for_through_stripe_keeps_its_unit_and_the_form_says_why(app, admin):
    from tests.admin.test_tenants import set_subscription
    from tests.factories import make_tenant

    with app.app_context():
        tenant_id = make_tenant("starter").id
        db.session.remove()
    set_subscription(app, tenant_id, stripe_subscription_id="sub_paying", status="active")

    response = admin.edit("starter", billing_unit="messages", included_messages="500",
                          message_categories=["authentication"])

    assert response.status_code == 400
    assert field_errors(page_of(response)) == {"billing_unit": (
        "Tenants pay for this plan through Stripe, their overage priced per conversation: it keeps its unit. "
        "Make a new plan billed the other way.")}
    assert stored_plan(app, "starter").billing_unit == "conversations"
