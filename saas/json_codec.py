"""JSON in and out of requests, with orjson where it gives the very bytes and values the standard library does.

Reading: ``loads`` parses with orjson and, for anything orjson refuses (lone
surrogates, NaN, other encodings than UTF-8, very deep nesting) or might read
otherwise (integers past 64 bits, which it reads as floats), parses with ``json.loads``, so every body is read exactly as
before and a refusal says what it always said.

Answering: ``OrjsonProvider.response`` (every ``jsonify``) writes what
Flask's own provider writes out of debug mode (sorted keys, compact, ASCII
only, a final newline, dates as HTTP dates, dataclasses as dicts), with
orjson; an answer orjson would write otherwise (text outside ASCII, which
Flask escapes; a value orjson does not take) is written by Flask's provider.
``dumps`` (templates' ``tojson``, other callers) is Flask's unchanged.
"""
from __future__ import annotations

import json
import re

import orjson
from flask.json.provider import DefaultJSONProvider

ANSWER_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME
                  | orjson.OPT_PASSTHROUGH_DATACLASS)


# orjson reads an integer past 64 bits as a float: a body with a run of 19 digits anywhere is read by json.
LONG_DIGITS = re.compile(rb"[0-9]{19}")


def loads(raw: bytes | str):
    """``json.loads(raw)``, faster: the same value, or the same ValueError/RecursionError."""
    if isinstance(raw, bytes) and LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, answering through orjson where its bytes are the same."""

    def loads(self, s, **kwargs):
        return json.loads(s, **kwargs) if kwargs else loads(s)

    def response(self, *args, **kwargs):
        if (self.compact is None and self._app.debug) or self.compact is False or not self.sort_keys:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=ANSWER_OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            body = None
        if body is None or (self.ensure_ascii and not body.isascii()):
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)
