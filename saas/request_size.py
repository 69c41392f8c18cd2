"""MAX_REQUEST_BYTES for every body, including those that do not say their length.

Flask refuses a declared Content-Length past MAX_CONTENT_LENGTH before reading
it. A chunked body (Transfer-Encoding: chunked, no Content-Length) has no
length to check, and Werkzeug's stream silently stops at the limit: the
request would be handled with a cut-off body. This middleware counts the bytes
as the app reads them (and looks one byte past the limit) and raises RequestEntityTooLarge (413, in the API's
envelope on API paths) the moment the count passes the limit.
"""
from __future__ import annotations

import re

from flask import Request, current_app
from werkzeug.exceptions import RequestEntityTooLarge

# The Cloud API's media upload: its body may exceed MAX_REQUEST_BYTES, up to MEDIA_MAX_BYTES of file.
MEDIA_UPLOAD_PATH = re.compile(r"^/v[0-9]{1,3}(?:\.[0-9]{1,3})?/[^/]+/media/?$")
# A CSV of contacts: its body may exceed MAX_REQUEST_BYTES, up to CONTACT_IMPORT_MAX_BYTES of file (API and portal).
CONTACT_IMPORT_PATH = re.compile(r"^(?:/api/v1)?/contacts/import/?$")
# Room for the form's other fields and its part headers around the file.
MULTIPART_ALLOWANCE = 64 * 1024


def media_upload_limit(config) -> int:
    """The largest body of a media upload request: MEDIA_MAX_BYTES of file plus the form around it."""
    return config["MEDIA_MAX_BYTES"] + MULTIPART_ALLOWANCE


def limit_for(environ, config) -> int | None:
    """The body limit of this request: the media upload's, a contact import's, or MAX_REQUEST_BYTES."""
    if environ.get("REQUEST_METHOD") == "POST":
        path = environ.get("PATH_INFO") or ""
        if MEDIA_UPLOAD_PATH.match(path):
            return media_upload_limit(config)
        if CONTACT_IMPORT_PATH.match(path):
            return config["CONTACT_IMPORT_MAX_BYTES"] + MULTIPART_ALLOWANCE
    return config.get("MAX_CONTENT_LENGTH")


class SizedRequest(Request):
    """Flask's request, whose body limit (``max_content_length``) is this route's (``limit_for``) before any
    view or before_request function (the CSRF check reads the form) reads the body."""

    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is None and current_app:
            return limit_for(self.environ, current_app.config)
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value


class CountedInput:
    """``wsgi.input`` that raises RequestEntityTooLarge once more than ``limit`` bytes were read."""

    def __init__(self, stream, limit: int):
        self._stream = stream
        self._limit = limit
        self._read = 0

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._limit:
            raise RequestEntityTooLarge()
        if self._read == self._limit and data and self._stream.read(1):
            # Werkzeug's own limit stops reading here and hands the app the first MAX bytes
            # as if they were the whole body; one more byte means the body is too large.
            raise RequestEntityTooLarge()
        return data

    def read(self, size: int = -1) -> bytes:
        # Never more than one byte past the limit at once: a huge body is not buffered to be refused.
        room = self._limit + 1 - self._read
        if size is None or size < 0 or size > room:
            size = max(room, 1)
        return self._count(self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        room = self._limit + 1 - self._read
        if size is None or size < 0 or size > room:
            size = max(room, 1)
        return self._count(self._stream.readline(size))

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self):
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class BodyLimit:
    """WSGI middleware: bodies without a Content-Length are counted against the app's MAX_CONTENT_LENGTH
    (a media upload's, against MEDIA_MAX_BYTES and its form)."""

    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ, start_response):
        limit = limit_for(environ, self.app.config)
        if limit is not None and not environ.get("CONTENT_LENGTH") and "wsgi.input" in environ:
            environ["wsgi.input"] = CountedInput(environ["wsgi.input"], limit)
        return self.wsgi_app(environ, start_response)
