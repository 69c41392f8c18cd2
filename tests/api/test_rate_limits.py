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


# -- a refusal costs next to nothing, and the access caches' bound still holds -------------------------------

def statements_during(app, call):
    """The SQL statements run while ``call()`` runs, and its result."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
    seen = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen, result


def test_a_refusal_loads_no_key_tenant_or_plan(app, client, limit_of_three):
    acme = sender(client)
    assert [acme.send(to=f"155512300{n}").status_code for n in range(3)] == [200, 200, 200]
    # What a refusal would have to load (the key, its tenant, subscription and plan) is gone from memory:
    # only the key's hash -> limit mapping is left, and it alone decides.
    for name in ("api_keys", "tenants", "subscriptions", "plans"):
        app.extensions["snapshot_caches"][name].clear()
    # The sends' follow-ups (sandbox receipts) are done: no statement but the refusal's can be seen.
    assert app.extensions["background"].join()
    statements, refused = statements_during(app, lambda: acme.send(to="15551230009"))
    assert refused.status_code == 429
    assert statements == []
    assert refused.get_json()["error"]["reason"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("3", "0")


def test_every_key_of_a_tenant_shares_its_count(app, client, limit_of_three):
    from tests.factories import make_key

    acme = sender(client)
    with app.app_context():
        from saas.tenants.models import Tenant

        second = {"Authorization": f"Bearer {make_key(db.session.get(Tenant, acme.tenant_id), 'second')}"}
        db.session.remove()
    assert acme.get("/api/v1/usage").status_code == 200
    assert client.get("/api/v1/usage", headers=second).status_code == 200
    assert acme.get("/api/v1/usage").status_code == 200
    assert client.get("/api/v1/usage", headers=second).status_code == 429
    assert acme.get("/api/v1/usage").status_code == 429


def poll(check, seconds: float):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_revoked_key_past_its_limit_stops_within_the_bound(app, client, limit_of_three, short_bound):
    from sqlalchemy import text

    acme = sender(client)
    for _ in range(3):
        assert acme.get("/api/v1/usage").status_code == 200
    assert acme.get("/api/v1/usage").status_code == 429
    # Revoked by another process: plain SQL, unseen by this process's caches.
    with app.app_context():
        db.session.execute(text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE tenant_id = :t"),
                           {"t": acme.tenant_id})
        db.session.commit()
        db.session.remove()
    assert poll(lambda: acme.get("/api/v1/usage").status_code == 401, short_bound + 2)


def test_a_limit_raised_elsewhere_applies_within_the_bound(app, client, limit_of_three, short_bound):
    from sqlalchemy import text

    acme = sender(client)
    for _ in range(3):
        acme.get("/api/v1/usage")
    assert acme.get("/api/v1/usage").status_code == 429
    with app.app_context():
        db.session.execute(text("UPDATE plans SET rate_limit_per_minute = 100 WHERE code = 'free'"))
        db.session.commit()
        db.session.remove()
    # The new limit is what the answers carry (a 200 alone could be a new minute's window under the old one).
    assert poll(lambda: acme.get("/api/v1/usage").headers.get("X-RateLimit-Limit") == "100", short_bound + 2)
    assert acme.get("/api/v1/usage").status_code == 200


def test_a_refusal_is_answered_after_the_pause(app, client, limit_of_three):
    import time

    acme = sender(client)
    for _ in range(3):
        assert acme.get("/api/v1/usage").status_code == 200
    app.config["RATE_LIMIT_PAUSE_SECONDS"] = 0.3
    try:
        started = time.monotonic()
        refused = acme.get("/api/v1/usage")
        took = time.monotonic() - started
    finally:
        app.config["RATE_LIMIT_PAUSE_SECONDS"] = 0
    assert refused.status_code == 429
    assert 0.3 <= took < 3
    assert 0 < int(refused.headers["Retry-After"]) <= 60
