"""Nothing a tenant owns is visible to, or usable by, another tenant."""
from __future__ import annotations

import pytest

from tests.factories import sender


@pytest.fixture
def pair(client):
    a, b = sender(client), sender(client)
    a.send(to="15551230001", body="tenant A's secret")
    return a, b


def test_b_cannot_send_from_a_number(pair):
    a, b = pair
    response = b.send(number=a.number)
    assert response.status_code == 404
    assert response.get_json()["error"]["reason"] == "not_found"
    assert a.get("/api/v1/usage").get_json()["messages"] == 1
    assert b.get("/api/v1/usage").get_json()["messages"] == 0


def test_b_cannot_send_from_a_number_via_v1(pair):
    a, b = pair
    response = b.client.post("/api/v1/messages", headers=b.headers, json={
        "messaging_product": "whatsapp", "to": "15551230001", "text": {"body": "x"},
        "phone_number_id": a.number})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_b_cannot_read_a_message(pair):
    a, b = pair
    message_id = a.get("/api/v1/messages").get_json()["data"][0]["id"]
    assert a.get(f"/api/v1/messages/{message_id}").status_code == 200
    response = b.get(f"/api/v1/messages/{message_id}")
    assert response.status_code == 404
    assert "secret" not in response.get_data(as_text=True)


def test_listings_hold_only_the_callers_rows(pair):
    a, b = pair
    assert b.get("/api/v1/messages").get_json()["data"] == []
    numbers = b.get("/api/v1/numbers").get_json()["data"]
    assert [n["phone_number_id"] for n in numbers] == [b.number]
    assert b.get("/api/v1/usage").get_json()["used"] == 0


def test_idempotency_key_of_a_does_not_replay_for_b(pair):
    a, b = pair
    first = a.send(to="15551230002", idempotency_key="k1")
    second = b.send(to="15551230002", idempotency_key="k1")
    assert second.status_code == 200
    assert first.get_json()["messages"][0]["id"] != second.get_json()["messages"][0]["id"]


@pytest.mark.parametrize("message_id", ["0", "-1", "abc", "99999999999999999999", "1;DROP TABLE messages"])
def test_odd_message_ids_are_404(pair, message_id):
    a, _ = pair
    response = a.get(f"/api/v1/messages/{message_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
