"""GET /api/v1/analytics/daily: the figures of the key's tenant only, per day and number, with failures per
code, Meta's cost by category and market and the plan's usage; every bad query answers the error envelope."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from saas.extensions import db
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests.analytics.conftest import make_shop, send, status, statuses
from tests.factories import make_key


def key_of(app, tenant_id: int) -> str:
    with app.app_context():
        secret = make_key(db.session.get(Tenant, tenant_id))
        db.session.remove()
    return secret


def daily(client, key, **query):
    return client.get("/api/v1/analytics/daily", query_string=query, headers={"Authorization": f"Bearer {key}"})


def test_the_figures_of_the_keys_tenant_per_day_and_number(priced, whatsapp, client):
    shop, other = make_shop(priced), make_shop(priced, waba_id="300000000000009")
    _, delivered = send(priced, shop, at=datetime(2025, 9, 1, 10), opened=True)
    _, failing = send(priced, shop, at=datetime(2025, 9, 2, 10), category="utility")
    for _ in range(3):
        send(priced, other, at=datetime(2025, 9, 1, 11))
    statuses(priced, client, shop, [status(delivered, "delivered"), status(failing, "failed", code=131026)])
    answer = daily(client, key_of(priced, shop.tenant_id), **{"from": "2025-09-01", "to": "2025-09-30"})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["from"], body["to"], body["timezone"], body["phone_number_id"]) == (
        "2025-09-01", "2025-09-30", "UTC", None)
    first, second = body["data"]
    assert (first["date"], first["phone_number_id"], first["sent"], first["delivered"], first["conversations"]) == (
        "2025-09-01", shop.number.phone_number_id, 1, 1, 1)
    assert first["cost"] == [{"currency": "USD", "estimated_micros": 61800, "confirmed_micros": 0,
                              "cost_micros": 61800}]
    assert (second["date"], second["failed"], second["failures"]) == ("2025-09-02", 1, {"131026": 1})
    assert body["totals"]["sent"] == 2 and body["failures"] == {"131026": 1}
    assert [(c["category"], c["market"], c["sent"]) for c in body["costs"]] == [
        ("marketing", "Argentina", 1), ("utility", "Argentina", 1)]
    assert set(body["usage"]) == {"metric", "period", "used", "included", "projected", "elapsed"}
    # The other tenant sees its own three messages, and none of these.
    theirs = daily(client, key_of(priced, other.tenant_id), **{"from": "2025-09-01", "to": "2025-09-30"}).get_json()
    assert theirs["totals"]["sent"] == 3 and theirs["failures"] == {}
    # One number: its own figures; another tenant's number is not one of this account's.
    mine = daily(client, key_of(priced, shop.tenant_id), **{"from": "2025-09-01", "to": "2025-09-30",
                                                             "number": shop.number.phone_number_id}).get_json()
    assert mine["phone_number_id"] == shop.number.phone_number_id and mine["totals"]["sent"] == 2
    refused = daily(client, key_of(priced, shop.tenant_id), number=other.number.phone_number_id)
    assert refused.status_code == 400 and "number" in refused.get_json()["error"]["details"]


def test_the_default_range_is_the_last_30_days(priced, client):
    shop = make_shop(priced)
    body = daily(client, key_of(priced, shop.tenant_id)).get_json()
    today = utcnow().date()
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert body["data"] == [] and body["totals"]["sent"] == 0


@pytest.mark.parametrize("query, field", [
    ({"from": "2025-02-30"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2025-9-1"}, "to"),
    ({"from": "2025-09-01\x00"}, "from"),
    ({"number": "123\x00"}, "number"),
    ({"from": "2025-09-10", "to": "2025-09-01"}, "from"),
    ({"from": "2024-01-01", "to": "2025-09-01"}, "to"),
    ({"from": "9" * 5000}, "from"),
])
def test_bad_query_parameters_answer_the_error_envelope(priced, client, query, field):
    shop = make_shop(priced)
    answer = daily(client, key_of(priced, shop.tenant_id), **query)
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_request" and field in error["details"]


def test_without_a_key_it_is_refused(client):
    answer = client.get("/api/v1/analytics/daily")
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "unauthenticated"
