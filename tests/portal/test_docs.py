"""The API reference (/docs): `code` in the document's descriptions is shown as code, and nothing in the
document becomes markup."""
from __future__ import annotations

import html
import re

from flask import render_template
from markupsafe import escape

from saas.portal.marked_text import inline_code


def descriptions(node):
    """Every description (and summary) string in an OpenAPI document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "summary") and isinstance(value, str):
                yield value
            else:
                yield from descriptions(value)
    elif isinstance(node, list):
        for item in node:
            yield from descriptions(item)


def visible_text(page: str) -> str:
    main = re.search(r"<main[^>]*>(.*)</main>", page, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", main))


def test_backtick_spans_of_the_document_are_shown_as_code(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    page = client.get("/docs").get_data(as_text=True)
    spans = {span for text in descriptions(doc) for span in re.findall(r"`([^`\n]+)`", text)}
    assert {"Authorization: Bearer wsk_...", "phone_number_id", "details"} <= spans
    for span in spans:
        assert f"<code>{escape(span)}</code>" in page, span
    assert "`" not in visible_text(page)


def test_the_filter_escapes_everything_but_the_spans():
    assert inline_code("Send `to` and `type`.") == "Send <code>to</code> and <code>type</code>."
    assert inline_code('<img src=x onerror="alert(1)"> `<script>alert(1)</script>`') == (
        "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; <code>&lt;script&gt;alert(1)&lt;/script&gt;</code>")
    # An unpaired backtick, or one closing on another line, stays a backtick.
    assert inline_code("a ` b") == "a ` b"
    assert inline_code("`a\nb`") == "`a\nb`"
    assert inline_code("") == "" and inline_code(None) == ""


def test_hostile_descriptions_render_as_text(app):
    hostile = '<script>alert(1)</script> `</code><b>bold</b>` & "quotes"'
    doc = {"openapi": "3.1.0", "info": {"title": "T", "version": "1", "description": hostile},
           "paths": {}, "components": {"schemas": {}}}
    operations = [{"path": "/x", "method": "GET", "operationId": "x", "summary": hostile, "description": hostile,
                   "parameters": [{"name": "p", "in": "query", "schema": {"type": "string"},
                                   "description": hostile}],
                   "responses": {"200": {"description": hostile}}}]
    schemas = {"S": {"type": "object", "properties": {"f": {"type": "string", "description": hostile}}}}
    with app.test_request_context("/docs"):
        page = render_template("portal/docs.html", doc=doc, operations=operations, schemas=schemas)
    assert "<script>alert" not in page and "<b>bold" not in page
    assert page.count("<code>&lt;/code&gt;&lt;b&gt;bold&lt;/b&gt;</code>") == 7
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 7
