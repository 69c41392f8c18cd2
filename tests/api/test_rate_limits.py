"""Plan rate limits: requests per minute per tenant, 429 with Retry-After, never across tenants."""
from __future__ import annotations

import pytest

from saas.billing.catalog import plan_by_code
from saas.extensions import db
from tests.factories import sender, usage_values


@pytest.fixture
def limit_of_three(app):
    with app.app_context():
        plan_by_code("free").rate_limit_per_minute = 3
        db.session.commit()
        db.session.remove()


def test_the_request_past_the_plan_limit_gets_429_in_graphs_shape(app, client, limit_of_three):
    acme = sender(client)
    assert [acme.send(to=f"155512300{n}").status_code for n in range(3)] == [200, 200, 200]
    refused = acme.send(to="15551230009")
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert (error["code"], error["reason"]) == (130429, "rate_limited")
    assert error["fbtrace_id"] == refused.headers["X-Request-Id"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # The refused request was never metered.
    assert usage_values(app, acme.tenant_id)["messages"] == 3


def test_v1_answers_429_in_its_own_envelope_and_counts_every_endpoint(client, limit_of_three):
    acme = sender(client)
    assert acme.get("/api/v1/usage").status_code == 200
    assert acme.get("/api/v1/numbers").status_code == 200
    assert acme.send().status_code == 200
    refused = acme.get("/api/v1/messages")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0


def test_one_tenant_at_its_limit_never_slows_another(client, limit_of_three):
    acme, other = sender(client), sender(client)
    for _ in range(3):
        acme.get("/api/v1/usage")
    assert acme.get("/api/v1/usage").status_code == 429
    assert [other.get("/api/v1/usage").status_code for _ in range(3)] == [200, 200, 200]


def test_the_limit_follows_the_plan(app, client, limit_of_three):
    acme, big = sender(client), sender(client, "enterprise")
    for _ in range(3):
        big.get("/api/v1/usage")
    assert big.get("/api/v1/usage").status_code == 200
    assert big.get("/api/v1/usage").headers["X-RateLimit-Limit"] == "6000"


def test_successful_answers_carry_the_limit_but_no_retry_after(client):
    acme = sender(client)
    response = acme.send()
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "60"
    assert "Retry-After" not in response.headers
