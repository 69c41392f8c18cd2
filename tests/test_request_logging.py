"""Every response carries X-Request-Id; log lines are JSON with request and tenant ids."""
from __future__ import annotations

import json
import logging

from saas.logs import JsonFormatter
from tests.factories import sender


def test_request_id_is_generated_or_kept(client):
    generated = client.get("/login").headers["X-Request-Id"]
    assert len(generated) == 32
    kept = client.get("/login", headers={"X-Request-Id": "edge-req-12345678"}).headers["X-Request-Id"]
    assert kept == "edge-req-12345678"
    # A header that could forge log lines is replaced, not echoed.
    forged = client.get("/login", headers={"X-Request-Id": "\" } injected"}).headers["X-Request-Id"]
    assert forged != "\" } injected" and len(forged) == 32


def test_error_responses_carry_the_request_id(client):
    response = client.get("/api/v1/usage")
    assert response.status_code == 401
    assert response.headers["X-Request-Id"]


def test_log_lines_name_the_request_and_the_tenant(client, caplog):
    acme = sender(client)
    with caplog.at_level(logging.INFO, logger="saas.access"):
        response = acme.send()
    records = [r for r in caplog.records if r.name == "saas.access"]
    assert records, "no access log line"
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == response.headers["X-Request-Id"]
    assert line["tenant_id"] == acme.tenant_id
    assert line["status"] == 200 and line["path"].endswith("/messages")
