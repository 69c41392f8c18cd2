"""The Graph API for what is not a send: a tenant's WhatsApp Business Account (templates).

One pooled ``requests.Session`` per app, connect and read timeouts, and the
base URL and API version read from the settings on every call (so tests and
operators can point WHATSAPP_GRAPH_URL anywhere at any time). Graph's errors
come back as ``GraphError`` with Meta's code, message and details; a Graph
that cannot be reached (or answers garbage) as ``GraphUnavailable``.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)


class GraphError(Exception):
    """Graph answered with an error: Meta's ``code`` and its human ``message`` and ``details``."""

    def __init__(self, status: int, code: int | None, message: str, details: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        if self.details and self.details not in self.message:
            return f"{self.message}: {self.details}"
        return self.message


class GraphUnavailable(GraphError):
    """Graph could not be reached, timed out, or answered something that is not Graph's JSON."""

    def __init__(self, message: str = "WhatsApp's Graph API could not be reached; nothing was changed."):
        super().__init__(503, None, message)


class Graph:
    """Calls to graph.facebook.com (or WHATSAPP_GRAPH_URL) with a number's access token."""

    def __init__(self, config, session: requests.Session | None = None):
        self.config = config
        self.session = session or _pooled_session()

    @property
    def base(self) -> str:
        return f"{self.config['WHATSAPP_GRAPH_URL'].rstrip('/')}/{self.config['WHATSAPP_API_VERSION']}"

    def url(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def owns(self, url: str) -> bool:
        """Whether ``url`` (a ``paging.next`` Graph gave us) points at the Graph we call: only there does a token go."""
        ours, theirs = urlsplit(self.config["WHATSAPP_GRAPH_URL"]), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    def get(self, url: str, token: str, params: dict | None = None) -> dict:
        return self.request("GET", url, token, params=params)

    def post(self, url: str, token: str, body: dict) -> dict:
        return self.request("POST", url, token, json=body)

    def delete(self, url: str, token: str, params: dict | None = None) -> dict:
        return self.request("DELETE", url, token, params=params)

    def request(self, method: str, url: str, token: str, *, params=None, json=None) -> dict:
        timeout = (self.config["WHATSAPP_CONNECT_TIMEOUT_SECONDS"],
                   self.config["WHATSAPP_TIMEOUT_SECONDS"])
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=timeout,
                                            headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            log.warning("graph call failed", extra={"method": method, "error": type(exc).__name__})
            raise GraphUnavailable() from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise GraphUnavailable(f"WhatsApp's Graph API answered HTTP {response.status_code} without JSON.")
        if response.status_code >= 400 or "error" in body:
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            code = error.get("code")
            details = (error.get("error_data") or {}).get("details") if isinstance(
                error.get("error_data"), dict) else None
            message = str(error.get("error_user_msg") or error.get("message") or f"HTTP {response.status_code}")
            if response.status_code >= 500 and code is None:
                raise GraphUnavailable(f"WhatsApp's Graph API failed (HTTP {response.status_code}); "
                                       "nothing was changed.")
            raise GraphError(response.status_code, code if isinstance(code, int) else None, message[:500],
                             str(details)[:500] if details else None)
        return body


def _pooled_session() -> requests.Session:
    session = requests.Session()
    # Retries are the caller's business (a template create is not idempotent); pool connections.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=20, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
