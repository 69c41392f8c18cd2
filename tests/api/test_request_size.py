"""Request bodies past MAX_REQUEST_BYTES are refused with 413, whether or not they say their length."""
from __future__ import annotations

import http.client
import json
import threading

import pytest
from werkzeug.serving import make_server

from tests.factories import sender


@pytest.fixture
def live(app):
    """The app behind a real HTTP server on 127.0.0.1 (werkzeug's, threaded)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join()


def post_chunked(port, path, body: bytes, headers: dict, chunk: int = 8192):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", path)
    for name, value in {**headers, "Transfer-Encoding": "chunked", "Content-Type": "application/json"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for start in range(0, len(body), chunk):
            piece = body[start:start + chunk]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the whole body is sent
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def message(size: int) -> bytes:
    return json.dumps({"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                       "text": {"body": "x" * 10, "pad": "y" * size}}).encode()


def test_a_chunked_body_past_the_limit_is_413_in_the_envelope(app, client, live):
    acme = sender(client)
    limit = app.config["MAX_CONTENT_LENGTH"]
    status, data = post_chunked(live, f"/v23.0/{acme.number}/messages", message(limit + 1000), acme.headers)
    assert status == 413, data
    assert json.loads(data)["error"]["code"] == 4130
    status, data = post_chunked(live, "/api/v1/messages", message(limit + 1000), acme.headers)
    assert status == 413, data
    assert json.loads(data)["error"]["code"] == "payload_too_large"
    assert acme.get("/api/v1/usage").get_json()["messages"] == 0


def test_a_chunked_body_within_the_limit_is_served(client, live):
    acme = sender(client)
    status, data = post_chunked(live, "/api/v1/messages", message(1000), acme.headers)
    assert status == 201, data


def test_a_declared_length_past_the_limit_is_413(app, client):
    acme = sender(client)
    response = client.post("/api/v1/messages", data=message(app.config["MAX_CONTENT_LENGTH"] + 10),
                           headers={**acme.headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
