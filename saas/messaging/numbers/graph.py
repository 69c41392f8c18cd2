"""The Graph API for what is not a send: templates, media, a number's info and business profile.

One pooled ``requests.Session`` per app (WHATSAPP_POOL_SIZE connections per
host, enough for a gevent worker's concurrent requests), connect and read
timeouts, and the base URL and API version read from the settings on every
call (so tests and operators can point WHATSAPP_GRAPH_URL anywhere at any
time). GET and DELETE are retried on 429, 5xx and a connection that fails,
honouring Retry-After within WHATSAPP_RETRY_BUDGET_SECONDS; a POST never is
(an upload or a template create is not idempotent). Graph's errors come back
as ``GraphError`` with Meta's error object; a Graph that cannot be reached (or
answers garbage) as ``GraphUnavailable``; one that does not answer in time as
``GraphTimeout``. ``as_upstream()`` turns any of them into the tenant's error.
"""
from __future__ import annotations

import json
import logging
import math
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from saas.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

IDEMPOTENT = {"GET", "DELETE", "HEAD"}


class GraphError(Exception):
    """Graph answered with an error: Meta's ``code``, its human ``message`` and ``details``.

    ``error`` is Meta's whole error object (subcode, type, fbtrace_id ...),
    ``retry_after`` its Retry-After header, if any.
    """

    def __init__(self, status: int, code: int | None, message: str, details: str | None = None, *,
                 error: dict | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.error = error or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.details and self.details not in self.message:
            return f"{self.message}: {self.details}"
        return self.message

    def as_upstream(self) -> UpstreamError:
        """The tenant's view: Meta's code, subcode, details, type, fbtrace_id and 4xx status."""
        return UpstreamError.from_graph(self.status, self.error, retry_after=_whole_seconds(self.retry_after))


class GraphUnavailable(GraphError):
    """Graph could not be reached, failed (5xx), or answered something that is not Graph's JSON."""

    def __init__(self, message: str = "WhatsApp's Graph API could not be reached; nothing was changed.", *,
                 status: int = 503, error: dict | None = None):
        super().__init__(status, None, message, error=error)

    def as_upstream(self) -> UpstreamError:
        if self.error:
            return UpstreamError.from_graph(502, self.error)
        return UpstreamError(self.message, details={"whatsapp_code": None})


class GraphTimeout(GraphUnavailable):
    """Graph did not answer within WHATSAPP_TIMEOUT_SECONDS."""

    def as_upstream(self) -> UpstreamError:
        return UpstreamTimeout(self.message, details={"whatsapp_code": None})


class Graph:
    """Calls to graph.facebook.com (or WHATSAPP_GRAPH_URL) with a number's access token."""

    def __init__(self, config, session: requests.Session | None = None, sleep=time.sleep):
        self.config = config
        self.session = session or pooled_session(config.get("WHATSAPP_POOL_SIZE", 256))
        self.sleep = sleep

    @property
    def base(self) -> str:
        return f"{self.config['WHATSAPP_GRAPH_URL'].rstrip('/')}/{self.config['WHATSAPP_API_VERSION']}"

    def url(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def owns(self, url: str) -> bool:
        """Whether ``url`` (a ``paging.next`` Graph gave us) points at the Graph we call: only there does a token go."""
        ours, theirs = urlsplit(self.config["WHATSAPP_GRAPH_URL"]), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    def may_fetch_media(self, url: str) -> bool:
        """Whether a media ``url`` Graph gave us may be fetched with a token: https, or the Graph we call."""
        if not isinstance(url, str) or len(url) > 4096:
            return False
        parts = urlsplit(url)
        return bool(parts.netloc) and (parts.scheme == "https" or self.owns(url))

    def get(self, url: str, token: str, params: dict | None = None) -> dict:
        return self.request("GET", url, token, params=params)

    def post(self, url: str, token: str, body: dict) -> dict:
        return self.request("POST", url, token, json=body)

    def delete(self, url: str, token: str, params: dict | None = None) -> dict:
        return self.request("DELETE", url, token, params=params)

    def upload(self, url: str, token: str, fields: dict, file_field: str, filename: str, mime_type: str,
               stream, size: int) -> dict:
        """POST a multipart form with one file, streamed from ``stream`` (``size`` bytes). Never retried."""
        body = MultipartBody(fields, file_field, filename, mime_type, stream, size)
        return self.request("POST", url, token, data=body, headers={"Content-Type": body.content_type,
                                                                   "Content-Length": str(len(body))})

    def request(self, method: str, url: str, token: str, *, params=None, json=None, data=None,
                headers=None) -> dict:
        response = self.send(method, url, token, params=params, json=json, data=data, headers=headers)
        try:
            body = response.json()
        except ValueError:
            body = None
        finally:
            response.close()
        if not isinstance(body, dict):
            raise GraphUnavailable(f"WhatsApp's Graph API answered HTTP {response.status_code} without JSON.")
        if response.status_code >= 400 or "error" in body:
            raise _graph_error(response, body)
        return body

    def stream(self, url: str, token: str) -> requests.Response:
        """GET ``url`` without reading its body (the caller streams and closes it); GraphError unless 200."""
        response = self.send("GET", url, token, stream=True, allow_redirects=False)
        if response.status_code != 200:
            try:
                # An error answer is small; never more than 64 KiB of one is read.
                body = json.loads(response.raw.read(65536, decode_content=True) or b"null")
            except (ValueError, requests.RequestException, OSError):
                body = None
            finally:
                response.close()
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                raise _graph_error(response, body)
            raise GraphUnavailable(f"WhatsApp's media server answered HTTP {response.status_code}.")
        return response

    def send(self, method: str, url: str, token: str, **kwargs) -> requests.Response:
        """One call, retried when it is idempotent and Graph failed or was busy; the last answer is returned."""
        timeout = (self.config["WHATSAPP_CONNECT_TIMEOUT_SECONDS"], self.config["WHATSAPP_TIMEOUT_SECONDS"])
        headers = {"Authorization": f"Bearer {token}", **(kwargs.pop("headers", None) or {})}
        retries = self.config.get("WHATSAPP_RETRIES", 2) if method in IDEMPOTENT else 0
        budget = self.config.get("WHATSAPP_RETRY_BUDGET_SECONDS", 3.0)
        waited = 0.0
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = self.session.request(method, url, timeout=timeout, headers=headers, **kwargs)
            except requests.ReadTimeout:
                log.warning("graph call timed out", extra={"method": method})
                raise GraphTimeout(f"WhatsApp's Graph API did not answer within {timeout[1]:g} seconds.") from None
            except requests.RequestException as exc:
                log.warning("graph call failed", extra={"method": method, "error": type(exc).__name__})
                pause = _backoff(attempt)
                if last or waited + pause > budget:
                    raise GraphUnavailable() from None
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                pause = _retry_after(response.headers.get("Retry-After"), attempt)
                if last or pause is None or waited + pause > budget:
                    return response
                response.close()
            self.sleep(pause)
            waited += pause
        raise AssertionError("unreachable")  # the last attempt returns or raises


def _backoff(attempt: int) -> float:
    return 0.2 * (2 ** attempt)


def _retry_after(header: str | None, attempt: int) -> float | None:
    """Seconds to wait before retrying: Retry-After's (whole or decimal seconds) or the backoff; None: unreadable."""
    if header is None:
        return _backoff(attempt)
    try:
        seconds = float(header)
    except ValueError:
        return None  # an HTTP date: far enough off not to wait for it here
    return seconds if 0 <= seconds < 3600 else None


def _whole_seconds(header: str | None) -> str | None:
    """Meta's Retry-After as whole seconds (rounded up), the only form we relay; None if it is not a number."""
    try:
        seconds = float(header)
    except (TypeError, ValueError):
        return None
    return str(max(0, math.ceil(seconds))) if math.isfinite(seconds) and seconds < 86400 else None


def _graph_error(response: requests.Response, body: dict) -> GraphError:
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
    details = data.get("details")
    message = str(error.get("error_user_msg") or error.get("message") or f"HTTP {response.status_code}")
    if response.status_code >= 500 and code is None:
        return GraphUnavailable(f"WhatsApp's Graph API failed (HTTP {response.status_code}); nothing was changed.",
                                status=response.status_code, error=error)
    return GraphError(response.status_code, code, message[:500], str(details)[:500] if details else None,
                      error=error, retry_after=response.headers.get("Retry-After"))


class MultipartBody:
    """A multipart/form-data body read from a file as it is sent: an upload is never held in memory whole."""

    CHUNK = 64 * 1024

    def __init__(self, fields: dict, file_field: str, filename: str, mime_type: str, stream, size: int):
        import secrets

        boundary = "----relay" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
                 f'filename="{filename}"\r\nContent-Type: {mime_type}\r\n\r\n').encode()
        self._parts = [head, stream, f"\r\n--{boundary}--\r\n".encode()]
        self._length = len(head) + size + len(self._parts[2])
        self._sent = [0, 0, 0]
        self._size = size

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        size = self.CHUNK if size is None or size < 0 else size
        for index, part in enumerate(self._parts):
            if isinstance(part, bytes):
                chunk = part[self._sent[index]:self._sent[index] + size]
            else:
                chunk = part.read(min(size, self._size - self._sent[index])) if self._sent[index] < self._size else b""
            if chunk:
                self._sent[index] += len(chunk)
                return chunk
        return b""


def pooled_session(pool_size: int = 100) -> requests.Session:
    """The process's one session for Graph (sends, media, numbers, profiles, templates).

    Retries are the callers' business (only calls that cannot act twice); one pool per host,
    sized for a gevent worker's concurrent requests, so no call opens and drops a connection
    of its own; no proxy, netrc or CA-bundle lookups from the environment on every call.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
