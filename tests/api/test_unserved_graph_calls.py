"""Graph calls this server does not serve (the Calling API, QR codes, blocking users ...) answer in Graph's shape,
naming the call, so a client library reports them as it reports Meta's refusals: never an HTML page, never a 500.
whatsapp-api-js calls some of them without a version in the path (POST /{phone_number_id}/calls)."""
from __future__ import annotations

import pytest

from tests.factories import sender


@pytest.fixture
def acme(client):
    return sender(client, "pro")


@pytest.mark.parametrize("method, path", [
    ("POST", "/{number}/calls"),
    ("POST", "/{number}/block_users"),
    ("DELETE", "/{number}/block_users"),
    ("POST", "/v24.0/{number}/message_qrdls?generate_qr_image=png&prefilled_message=Hi"),
    ("GET", "/v24.0/{number}/message_qrdls/"),
    ("DELETE", "/v24.0/{number}/message_qrdls/qr-1"),
    ("GET", "/v24.0/{number}/messages"),
    ("PUT", "/v24.0/{number}/media"),
])
def test_an_unserved_graph_call_gets_a_graph_shaped_error_naming_it(acme, method, path):
    response = acme.client.open(path.format(number=acme.number), method=method, headers=acme.headers,
                                json={"messaging_product": "whatsapp"})
    assert response.status_code in (404, 405)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error["code"], int) and error["code"] == 100
    assert error["type"] == "OAuthException" and error["fbtrace_id"] == response.headers["X-Request-Id"]
    shown = path.format(number=acme.number).split("?")[0]
    assert error["message"] == (f"(#100) Unsupported {method.lower()} request: {method} {shown} is not a call "
                                "this server serves.")


def test_paths_that_are_no_graph_objects_keep_their_html_pages(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"
