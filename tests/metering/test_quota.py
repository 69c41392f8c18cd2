"""Conversation windows, the hard cap and idempotent sends."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from saas.extensions import db
from saas.messaging.models import Conversation, Message
from saas.metering.models import UsageRecord
from saas.errors import UpstreamError
from tests.factories import call_send, service_with, sender, set_quota, usage_values
from tests.contacts.consent.factories import opt_in


@pytest.fixture
def acme(client):
    return sender(client)


def usage(s):
    return s.get("/api/v1/usage").get_json()


def test_sends_in_an_open_window_open_nothing_new(acme):
    for body in ("one", "two", "three"):
        assert acme.send(to="15551230001", body=body).status_code == 200
    assert acme.send(to="15551230002").status_code == 200
    current = usage(acme)
    assert current["used"] == 2
    assert current["messages"] == 4
    assert current["by_category"]["service"] == 2
    assert current["remaining"] == 248


def test_template_opens_a_separate_marketing_window(app, client):
    starter = sender(client, "starter")
    opt_in(app, starter.tenant_id, starter.number, "15551230001")
    starter.send(to="15551230001")
    starter.send(payload={"messaging_product": "whatsapp", "to": "15551230001", "type": "template",
                          "template": {"name": "seasonal_promotion", "language": {"code": "en_US"}}})
    current = usage(starter)
    assert current["used"] == 2
    assert current["by_category"] == {"marketing": 1, "utility": 0, "authentication": 0, "service": 1}


def test_an_expired_window_is_replaced_by_a_new_one(app, acme):
    acme.send(to="15551230001")
    with app.app_context():
        for conversation in db.session.scalars(select(Conversation)):
            conversation.opened_at -= timedelta(hours=25)
            conversation.expires_at -= timedelta(hours=25)
        db.session.commit()
    acme.send(to="15551230001")
    assert usage(acme)["used"] == 2
    with app.app_context():
        seqs = db.session.scalars(select(Conversation.seq).order_by(Conversation.seq)).all()
    assert seqs == [1, 2]


def test_hard_cap_allows_exactly_the_quota_and_refuses_the_next(app, acme):
    with app.app_context():
        set_quota("free", 3)
    for n in range(3):
        assert acme.send(to=f"1555123000{n}").status_code == 200
    refused = acme.send(to="15551230009")
    assert refused.status_code == 402
    error = refused.get_json()["error"]
    assert error["reason"] == "quota_exceeded"
    assert error["code"] == 4020
    assert error["upgrade_url"].endswith("/billing")
    current = usage(acme)
    assert (current["used"], current["remaining"], current["messages"]) == (3, 0, 3)
    with app.app_context():
        # The refused send left nothing behind: no message, no window, no usage record.
        assert db.session.scalar(select(func.count()).select_from(Message)) == 3
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == 3
        assert db.session.scalar(select(func.count()).select_from(UsageRecord)) == 3


def test_at_the_cap_a_send_inside_an_open_window_still_goes(app, acme):
    with app.app_context():
        set_quota("free", 1)
    assert acme.send(to="15551230001").status_code == 200
    assert acme.send(to="15551230002").status_code == 402
    assert acme.send(to="15551230001", body="still in the window").status_code == 200
    assert usage(acme)["used"] == 1


def test_v1_quota_error_uses_the_api_envelope(app, acme):
    with app.app_context():
        set_quota("free", 0)
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json={
        "messaging_product": "whatsapp", "to": "15551230001", "text": {"body": "hi"}})
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["quota"] == 0
    assert error["upgrade_url"].endswith("/billing")


def test_overage_plan_has_no_cap(app, client):
    starter = sender(client, "starter")
    with app.app_context():
        set_quota("starter", 1)
    assert starter.send(to="15551230001").status_code == 200
    assert starter.send(to="15551230002").status_code == 200
    current = usage(starter)
    assert (current["used"], current["overage"], current["hard_cap"]) == (2, 1, False)


def test_same_idempotency_key_and_body_returns_the_first_result(app, acme):
    first = acme.send(to="15551230001", idempotency_key="order-42")
    again = acme.send(to="15551230001", idempotency_key="order-42")
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    current = usage(acme)
    assert (current["used"], current["messages"]) == (1, 1)


def test_same_idempotency_key_with_another_body_is_409(acme):
    acme.send(to="15551230001", body="a", idempotency_key="order-43")
    response = acme.send(to="15551230001", body="b", idempotency_key="order-43")
    assert response.status_code == 409
    assert response.get_json()["error"]["reason"] == "idempotency_conflict"
    assert usage(acme)["messages"] == 1


def test_idempotency_keys_are_per_tenant(client, acme):
    other = sender(client)
    assert acme.send(idempotency_key="shared").status_code == 200
    assert other.send(idempotency_key="shared").status_code == 200
    assert usage(other)["messages"] == 1


def test_replayed_failure_returns_the_same_error_and_bills_nothing(acme):
    first = acme.send(to="15550000131", idempotency_key="fails")
    again = acme.send(to="15550000131", idempotency_key="fails")
    assert first.status_code == again.status_code == 502
    assert first.get_json()["error"]["code"] == again.get_json()["error"]["code"] == 131026
    assert usage(acme)["messages"] == 0


def test_bad_idempotency_key_is_400(acme):
    response = acme.send(idempotency_key="x" * 300)
    assert response.status_code == 400


def test_failed_send_in_a_window_another_send_opened_keeps_that_window(app, acme):
    acme.send(to="15550000131")  # fails: its window is undone
    assert acme.send(to="15551230001").status_code == 200
    values = usage_values(app, acme.tenant_id)
    with app.app_context():
        records = db.session.scalars(select(UsageRecord)).all()
    assert values["conversations"] == 1 and values["messages"] == 1
    # The sandbox answers before anything is metered: its refusal wrote no usage to void.
    assert [r.voided_at for r in records] == [None]


class BrokenNetwork:
    """A transport whose network is down: every send raises, as requests does."""

    mode = "sandbox"

    def send(self, number, payload):
        import requests

        raise requests.ConnectionError("connection refused")

    def follow_ups(self, tenant_id, wa_message_id):
        raise AssertionError("nothing was accepted")


def test_a_transport_that_raises_bills_nothing_and_answers_502(app, acme):
    with app.app_context():
        service = service_with(BrokenNetwork())
        with pytest.raises(UpstreamError) as raised:
            call_send(service, acme, {"messaging_product": "whatsapp", "to": "15551230001", "type": "text",
                                      "text": {"body": "hi"}})
        db.session.remove()
    assert raised.value.status == 502 and raised.value.code == "upstream_error"
    current = usage(acme)
    assert (current["used"], current["messages"]) == (0, 0)
    assert acme.get("/api/v1/messages").get_json()["data"][0]["status"] == "failed"
