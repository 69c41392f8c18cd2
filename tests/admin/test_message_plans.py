"""Plans billed per message, made and edited in the admin's plan form."""
from __future__ import annotations

import pytest

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
