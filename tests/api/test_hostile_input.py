"""Whatever a client sends, the API answers with a JSON error or a result, never a 500."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import sender

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

message_like = st.fixed_dictionaries(
    {"messaging_product": st.sampled_from(["whatsapp", "sms", ""]) | json_values},
    optional={
        "to": st.sampled_from(["15551234567", "+1 555 123 4567", "", "abc"]) | json_values,
        "type": st.sampled_from(["text", "template", "image", "interactive", "location", "contacts",
                                 "reaction", "nope"]) | json_values,
        "text": st.fixed_dictionaries({"body": st.text(max_size=30) | json_values}) | json_values,
        "template": json_values,
        "image": st.fixed_dictionaries({}, optional={"link": st.text(max_size=20), "id": json_values}),
        "interactive": json_values,
        "location": st.fixed_dictionaries({"latitude": json_values, "longitude": json_values}),
        "contacts": json_values,
        "context": json_values,
        "status": st.sampled_from(["read"]) | json_values,
        "message_id": json_values,
        "phone_number_id": json_values,
    },
)


@pytest.fixture
def pro(client, backend):
    if backend != "sqlite":
        pytest.skip("input handling does not depend on the database; fuzzed once, on SQLite")
    return sender(client, "pro")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=message_like)
def test_fuzzed_send_bodies_never_cause_a_500(pro, body):
    for path in (f"/v23.0/{pro.number}/messages", "/api/v1/messages"):
        response = pro.client.post(path, data=json.dumps(body), headers={**pro.headers,
                                                                          "Content-Type": "application/json"})
        assert response.status_code < 500, (path, body, response.get_data(as_text=True))
        assert response.is_json


@pytest.mark.parametrize("raw", [
    b'{"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "a\\u0000b"}}',
    b'{"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "\\ud800"}}',
    b'{"messaging_product": "whatsapp", "to": "15551234567", "type": "location",'
    b' "location": {"latitude": 1e400, "longitude": 0}}',
    b'{"messaging_product": "whatsapp", "to": "15551234567", "type": "location",'
    b' "location": {"latitude": NaN, "longitude": Infinity}}',
    b'{"messaging_product": "whatsapp", "to": "15551234567", "type": "template", "template": {"name": "x",'
    b' "language": {"code": "en"}, "components": [' + b"[" * 200 + b"]" * 200 + b"]}}",
    b'{"messaging_product": "whatsapp", "to": "15551234567", "type": "location",'
    b' "location": {"latitude": 1' + b"0" * 400 + b', "longitude": 0}}',
])
def test_bodies_json_allows_but_storage_does_not_are_400(client, backend, raw):
    acme = sender(client, "pro")
    for path in (f"/v23.0/{acme.number}/messages", "/api/v1/messages"):
        response = client.post(path, data=raw, headers={**acme.headers, "Content-Type": "application/json"})
        assert response.status_code == 400, response.get_data(as_text=True)
    assert acme.get("/api/v1/usage").get_json()["messages"] == 0


@pytest.mark.parametrize("headers, status", [
    ({"Idempotency-Key": ""}, 400), ({"Idempotency-Key": "é"}, 400), ({"Idempotency-Key": "a b"}, 400),
    # The body is JSON whatever the client labels it: the send goes out.
    ({"Content-Type": "text/plain"}, 200), ({"Content-Type": "application/x-www-form-urlencoded"}, 200),
])
def test_odd_headers_get_clear_answers(client, headers, status):
    acme = sender(client)
    response = client.post(f"/v23.0/{acme.number}/messages", headers={**acme.headers, **headers},
                           data=json.dumps({"messaging_product": "whatsapp", "to": "15551234567",
                                            "text": {"body": "hi"}}))
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    # A refused request sent nothing; an accepted one exactly one message.
    assert acme.get("/api/v1/usage").get_json()["messages"] == (1 if status == 200 else 0)
