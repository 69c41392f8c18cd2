"""The OpenAPI document: served without a key, valid 3.1, rendered on /docs, and the API keeps to it."""
from __future__ import annotations

import re

import pytest

from tests.factories import sender


def test_the_document_is_served_without_a_key(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/api/v1/messages", "/api/v1/messages/{message_id}", "/api/v1/numbers",
                                 "/api/v1/usage", "/api/v1/contacts", "/api/v1/contacts/{contact_id}",
                                 "/api/v1/contacts/export", "/api/v1/contacts/labels", "/api/v1/contacts/attributes",
                                 "/api/v1/contacts/attributes/{key}", "/api/v1/contacts/import",
                                 "/api/v1/contacts/import/{import_id}", "/api/v1/contacts/import/{import_id}/errors", "/{version}/{phone_number_id}/messages",
                                 "/{version}/{phone_number_id}/media", "/{version}/{object_id}",
                                 "/{version}/media/{media_id}/content",
                                 "/{version}/{phone_number_id}/whatsapp_business_profile",
                                 "/api/v1/contacts/{contact_id}/consent", "/api/v1/consent/keywords",

                                 "/api/v1/broadcasts", "/api/v1/broadcasts/{broadcast_id}",
                                 "/api/v1/broadcasts/{broadcast_id}/recipients",
                                 *(f"/api/v1/broadcasts/{{broadcast_id}}/{verb}"
                                   for verb in ("start", "pause", "resume", "cancel", "check")),
                                 "/api/v1/threads", "/api/v1/threads/{thread_id}",
                                 "/api/v1/threads/{thread_id}/assign", "/api/v1/threads/{thread_id}/resolve",
                                 "/api/v1/threads/{thread_id}/reopen", "/api/v1/threads/{thread_id}/replies",
                                 "/api/v1/threads/{thread_id}/notes",
                                 "/api/v1/automation/rules", "/api/v1/automation/rules/{rule_id}",
                                 "/api/v1/automation/rules/{rule_id}/replay", "/api/v1/automation/settings",
                                 "/api/v1/automation/hours/{number_id}",
                                 "/api/v1/orders", "/api/v1/orders/{reference}", "/api/v1/orders/{reference}/events",
                                 "/api/v1/order-notifications", "/api/v1/order-notifications/{event}",
                                 "/api/v1/order-notifications/{event}/preview", "/api/v1/shop-connections",
                                 "/api/v1/shop-connections/{platform}", "/api/v1/analytics/daily",
                                 "/api/v1/exports/messages", "/api/v1/exports/usage", "/api/v1/exports/usage-records",
                                 "/api/v1/exports/orders"}
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer",
                                                             "description": "An API key: wsk_..."}
    assert doc["security"] == [{"bearer": []}]
    send = doc["paths"]["/api/v1/messages"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in send["parameters"]]
    assert send["responses"]["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    # Built from the schemas the views load with.
    to = doc["components"]["schemas"]["SendMessage"]["properties"]["to"]
    assert to["maxLength"] == 32


def test_the_document_is_valid_openapi_3_1(client):
    from jsonschema_rs import validator_for  # noqa: F401  (schemathesis's validator; the check below is its loader)
    import schemathesis

    schema = schemathesis.openapi.from_dict(client.get("/api/v1/openapi.json").get_json())
    assert len(list(schema.get_all_operations())) == 72


def test_the_docs_page_lists_operations_parameters_and_schemas_without_script(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for text in ("POST /api/v1/messages", "GET /api/v1/usage", "POST /{version}/{phone_number_id}/messages",
                 "Idempotency-Key", 'id="schema-SendMessage"', 'id="schema-Error"', "maxLength: 32"):
        assert text in html, text
    # Rendered on the server: no inline script (the portal's own static copy.js is all that loads).
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/js/copy.js" defer>']
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
