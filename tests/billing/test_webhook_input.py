"""POST /webhooks/stripe with signed bodies our columns cannot hold, or signatures from the future: 400, nothing kept."""
from __future__ import annotations

import json
import time

import pytest

from saas.audit.models import AuditEvent
from saas.billing.models import StripeEvent
from saas.billing.stripe_fields import MAX_DEPTH
from saas.extensions import db
from saas.tenants.models import Tenant
from tests import factories
from tests.billing.test_webhooks import checkout, count, deliver, prices, refused, state, subscribed  # noqa: F401


def nothing_changed(tenant_id):
    """The tenant is where a refused delivery found it: free, no Stripe customer, no audit entry."""
    assert state(tenant_id).plan.code == "free" and state(tenant_id).stripe_subscription_id is None
    db.session.expire_all()
    assert db.session.get(Tenant, tenant_id).stripe_customer_id is None
    assert count(AuditEvent) == 0


# -- the signature's time ------------------------------------------------------------------------
def test_a_signature_dated_past_the_tolerance_ahead_is_refused(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    refused(deliver(client, stripe, events[1], timestamp=int(time.time()) + 360), 400, "invalid_signature")
    refused(deliver(client, stripe, events[1], timestamp=int(time.time()) + 10 ** 9), 400, "invalid_signature")
    nothing_changed(tenant.id)


def test_a_signature_a_little_ahead_is_accepted_as_clock_drift(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    assert deliver(client, stripe, events[1], timestamp=int(time.time()) + 240).status_code == 200
    assert state(tenant.id).plan.code == "pro"


def test_of_two_t_values_the_first_is_the_signed_one(ctx, client, stripe, prices):
    # The SDK verifies the HMAC over the first t=; a later, harmless t= must not hide a future first one.
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    body, headers = stripe.signed(events[1], timestamp=int(time.time()) + 3600)
    headers["Stripe-Signature"] += f",t={int(time.time())}"
    db.session.commit()
    refused(client.post("/webhooks/stripe", data=body, headers=headers), 400, "invalid_signature")


# -- nesting ------------------------------------------------------------------------------------
def nested(event: dict, arrays: int) -> bytes:
    """The event with ``arrays`` nested arrays in its object (written by hand: json.dumps would recurse)."""
    marked = json.loads(json.dumps(event))
    marked["data"]["object"]["deep"] = "DEEP"
    return json.dumps(marked).replace('"DEEP"', "[" * arrays + "]" * arrays).encode()


# The event, data and data.object are three levels: MAX_DEPTH - 2 arrays inside is one too many.
@pytest.mark.parametrize("arrays", [5000, 100_000, MAX_DEPTH - 2])
def test_a_body_nested_too_deep_is_refused_and_records_nothing(ctx, client, stripe, prices, arrays):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    body = nested(events[1], arrays)
    refused(deliver(client, stripe, body), 400, "invalid_request")
    nothing_changed(tenant.id)


def test_a_body_nested_as_deep_as_allowed_is_applied(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    assert deliver(client, stripe, nested(events[1], MAX_DEPTH - 3)).status_code == 200
    assert state(tenant.id).plan.code == "pro"


# -- values our columns cannot hold --------------------------------------------------------------
def at(event: dict, path: str, value) -> dict:
    """A copy of ``event`` with the value at ``path`` ("data.object.items.data.0.id") replaced."""
    event = json.loads(json.dumps(event))
    *parents, last = path.split(".")
    node = event
    for name in parents:
        node = node[int(name)] if isinstance(node, list) else node[name]
    node[int(last) if isinstance(node, list) else last] = value
    return event


NUL = "\x00"
LONG = "sub_" + "x" * 252  # 256 characters: one past String(255)


@pytest.mark.parametrize("which, path, value", [
    (1, "id", "evt_1" + NUL),
    (1, "id", "evt_" + "x" * 252),
    (1, "id", ""),
    (1, "type", "customer.subscription.updated" + NUL),
    (1, "type", "customer.subscription." + "x" * 79),
    (1, "created", 10 ** 15),
    (1, "created", -1),
    (1, "created", True),
    (1, "data.object.id", "sub_1" + NUL),
    (1, "data.object.id", LONG),
    (1, "data.object.customer", "cus_1" + NUL),
    (1, "data.object.customer", "cus_" + "x" * 252),
    (1, "data.object.customer", ["cus_1"]),
    (1, "data.object.status", "active" + NUL),
    (1, "data.object.metadata.note", "hello" + NUL),
    (1, "data.object.metadata", {"note" + NUL: "hello"}),
    (1, "data.object.metadata.note", "\ud800"),
    (1, "data.object.items.data.0.id", "si_" + "x" * 253),
    (1, "data.object.items.data.0.price.id", "price 1"),
    (1, "data.object.items.data.0.price", "price_1"),
    (1, "data.object.items.data.0.current_period_start", 10 ** 15),
    (1, "data.object.trial_end", 10 ** 15),
    (0, "data.object.customer", "cus_" + "x" * 252),
    (0, "data.object.subscription", "sub_1" + NUL),
    (0, "data.object.subscription", LONG),
    (2, "data.object.parent.subscription_details.subscription", LONG),
    (2, "data.object.hosted_invoice_url", "https://invoice.example/" + NUL),
])
def test_a_value_our_columns_cannot_hold_is_refused_and_records_nothing(ctx, client, stripe, prices, which, path,
                                                                      value):
    tenant = factories.make_tenant()
    events, _ = checkout(stripe, tenant, prices)
    refused(deliver(client, stripe, at(events[which], path, value)), 400, "invalid_request")
    nothing_changed(tenant.id)
    assert stripe.requests("GET", "/v1/subscriptions") == []  # refused before anything was asked of Stripe


def test_an_unknown_event_with_an_odd_customer_is_still_recorded(ctx, client, stripe):
    event = stripe.event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id", "customer": {"no": "id"}})
    assert deliver(client, stripe, event).status_code == 200
    assert count(StripeEvent) == 1


def test_a_subscription_read_from_stripe_that_cannot_be_stored_is_left_for_retry(ctx, client, stripe, prices):
    # checkout.session.completed carries only the id: what Stripe answers for it is checked too.
    tenant = factories.make_tenant()
    events, sub_id = checkout(stripe, tenant, prices)
    stripe.get(sub_id)["items"]["data"][0]["id"] = "si_" + "x" * 253
    response = deliver(client, stripe, events[0])
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "event_failed"
    row = db.session.get(StripeEvent, events[0]["id"])
    assert row.processed_at is None and row.error.startswith("UnstorableStripeObject: an item's id")
    assert state(tenant.id).plan.code == "free"


def test_a_subscription_event_still_applies_after_these_checks(ctx, client, stripe, prices):
    tenant = factories.make_tenant()
    sub_id = subscribed(client, stripe, tenant, prices, "starter")
    assert state(tenant.id).stripe_subscription_id == sub_id and state(tenant.id).plan.code == "starter"
