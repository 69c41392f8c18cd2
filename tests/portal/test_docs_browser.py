"""The API reference (/docs) in a real browser, at desktop and phone widths: it shows every operation and schema
of the OpenAPI document served at /api/v1/openapi.json, under the Content-Security-Policy, with no console
error, and nothing scrolls sideways (not the page, not a table)."""
from __future__ import annotations

import pytest

from tests.portal.test_browser import browser, http, open_page  # noqa: F401  (fixtures)
from tests.portal.test_polish_browser import SIZES, fits
from playwright.sync_api import expect  # noqa: E402


@pytest.mark.parametrize("size", SIZES)
def test_the_docs_page_renders_the_openapi_document(size, open_page, live_server, http):
    response = http.get(f"{live_server}/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    doc = response.json()
    options = SIZES[size]
    watched = open_page(**options)
    page = watched.page

    answer = page.goto("/docs")
    assert answer.status == 200
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    expect(page.locator("#docs-title")).to_contain_text(doc["info"]["title"])
    # `Code` in the descriptions shows as code, never with its backticks.
    expect(page.locator("#docs-description code").first).to_have_text("Authorization: Bearer wsk_...")
    assert "`" not in page.locator("main").inner_text()
    operations = [(method.upper(), path, op) for path, item in doc["paths"].items() for method, op in item.items()]
    # The v1 API and the Cloud-API-compatible paths (sends, media, number info, profile) all appear.
    assert {"/api/v1/messages", "/{version}/{phone_number_id}/messages", "/{version}/{phone_number_id}/media"} <= {
        path for _, path, _ in operations}
    expect(page.locator("article[id^='op-']")).to_have_count(len(operations))
    for method, path, op in operations:
        article = page.locator(f'[id="op-{op["operationId"]}"]')
        expect(article).to_be_visible()
        expect(article.locator("header")).to_contain_text(f"{method} {path}")
        expect(article.locator("header")).to_contain_text(op["summary"])
        for name in (p["name"] for p in op.get("parameters", ())):
            expect(article).to_contain_text(name)
        for status in op["responses"]:
            expect(article).to_contain_text(status)
    for name, schema in doc["components"]["schemas"].items():
        block = page.locator(f'[id="schema-{name}"]')
        expect(block).to_be_attached()
        for field in (schema.get("properties") or {}):
            expect(block).to_contain_text(field)
    # The link to the machine-readable document is the one served.
    expect(page.locator('a[href="/api/v1/openapi.json"]')).to_be_visible()
    # An operation's link in the list jumps to it.
    first = operations[0][2]["operationId"]
    page.locator(f'a[href="#op-{first}"]').click()
    expect(page.locator(f'[id="op-{first}"]')).to_be_in_viewport()

    fits(page, options["viewport"]["width"])
    watched.assert_clean()
