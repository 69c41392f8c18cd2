"""JSON read and answered through orjson: the same values read, the same bytes answered as Flask's own provider."""
from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup

from saas import json_codec


@dataclasses.dataclass
class Point:
    x: int
    when: date


ANSWERS = [
    {"b": 1, "a": {"z": [1, 2.5, None, True], "y": "text"}},
    {"error": {"code": "invalid_request", "message": "Some fields are missing or invalid.",
               "details": {"to": ["Missing data for required field."], "text": {"body": ["Too long."]}}}},
    {"error": {"message": "(#131030) Recipient not in allowed list", "type": "OAuthException", "code": 131030,
               "error_data": {"messaging_product": "whatsapp", "details": "x"}, "fbtrace_id": "abc"}},
    {"when": datetime(2026, 12, 6, 23, 0, tzinfo=timezone.utc), "day": date(2026, 12, 6), "naive": datetime(2026, 1, 1)},
    {"amount": Decimal("12.50"), "id": uuid.UUID(int=7), "point": Point(1, date(2026, 1, 2))},
    {"html": Markup("<b>bold</b>"), "slash": "a/b", "quote": "\"'<>&", "control": "\x01\n\t"},
    {"accents": "café", "emoji": "\U0001F44D", "arabic": "\u0661"},  # Flask escapes them: answered by Flask
    {"big": 2**70, "negative": -(2**63) - 1, "max": 2**63 - 1},
    {1: "int key", "2": "str key"},
    [1, "two", {"three": 3}],
    ("a", "tuple"),
    None, "", 0, 1e16, 0.1, 100.0, -0.0,
]


@pytest.fixture
def flask_app():
    app = Flask(__name__)
    app.json = json_codec.OrjsonProvider(app)
    return app


@pytest.mark.parametrize("value", ANSWERS, ids=range(len(ANSWERS)))
def test_answers_are_the_bytes_flask_answers(flask_app, value):
    def answer(provider):
        try:
            response = provider.response(value)
        except TypeError:
            return "not JSON"
        return response.mimetype, response.get_data()
    with flask_app.app_context():
        assert answer(flask_app.json) == answer(DefaultJSONProvider(flask_app))


def test_a_debug_app_is_answered_indented_as_flask_does(flask_app):
    flask_app.debug = True
    with flask_app.app_context():
        assert flask_app.json.response({"b": 1, "a": 2}).get_data() == b'{\n  "a": 2,\n  "b": 1\n}\n'


def test_what_neither_can_write_is_refused_alike(flask_app):
    with flask_app.app_context(), pytest.raises(TypeError):
        flask_app.json.response({"x": object()})


BODIES = [
    b'{"a": 1, "b": [1.5, "x", null, true]}', b'{"a": 1, "a": 2}', b"[1, 2]", b'"text"', b"12", b"-0", b"1.0",
    b"1E400", b"NaN", b"[Infinity, -Infinity]", b'{"x": "\\ud800"}', b'{"x": "\\u0000"}', b'{"x": "caf\xc3\xa9"}',
    b"\xef\xbb\xbf{}", '{"x": 1}'.encode("utf-16"), b"99999999999999999999999", b"-9223372036854775809", b"18446744073709551616", b'{"to": "1234567890123456789"}',
    b"[" * 5000 + b"]" * 5000,
    b"", b"{", b"{'a': 1}", b'{"a": 1,}', b"\xff", b"  {} ", b"{} x", "{\"x\": \"é\"}",
]


@pytest.mark.parametrize("raw", BODIES, ids=range(len(BODIES)))
def test_bodies_are_read_as_the_standard_library_reads_them(raw):
    def read(parse):
        try:
            return ("value", repr(parse(raw)))
        except RecursionError:
            return ("too deep",)
        except ValueError:
            return ("not json",)
    assert read(json_codec.loads) == read(json.loads)
