"""The live transport: a send forwarded to WhatsApp's Cloud API with the number's own token.

``POST {WHATSAPP_GRAPH_URL}/{WHATSAPP_API_VERSION}/{phone_number_id}/messages``
with ``Authorization: Bearer <the tenant's system-user token>`` and the
tenant's own message body. One pooled ``requests`` session per process
(WHATSAPP_POOL_SIZE connections to Graph, kept alive), connect and read
timeouts from the settings, read at every call.

A send is retried only where a retry cannot send twice: when the connection
could not be made (nothing reached Meta), and when Meta refused it for
throughput (130429) with a Retry-After short enough to wait for. A read
timeout, a dropped answer or a 5xx may follow a message that went out, so
they are never retried; the send is reported as failed and not billed.
Graph's error answers are kept whole (``SendResult.graph_error``) for the
tenant to see as Meta wrote them.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import requests
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict

from saas.messaging.numbers.graph import pooled_session
from saas.crypto import TokenCipher
from saas.messaging.outbound.transports import SendResult

log = logging.getLogger(__name__)

# Meta's throughput refusal: nothing was sent, and Meta says when to come back.
RETRYABLE_CODES = {130429}
# The longest wait between tries that Meta did not time (a connection never made).
LONGEST_BACKOFF = 1.0


class TokenCache:
    """Decrypted access tokens by ciphertext: one Fernet decryption per token and process.

    A reconnected or rotated token is a new ciphertext, so an entry never goes stale;
    the cache is bounded and simply emptied when full. ``decrypt`` is the cipher's
    (saas.crypto.TokenCipher.decrypt).
    """

    def __init__(self, decrypt, max_entries: int = 10_000):
        self.max_entries = max_entries
        self.decrypt = decrypt
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def token(self, ciphertext: str) -> str:
        token = self._tokens.get(ciphertext)
        if token is None:
            token = self.decrypt(ciphertext)
            with self._lock:
                if len(self._tokens) >= self.max_entries:
                    self._tokens.clear()
                self._tokens[ciphertext] = token
        return token


class CloudApiTransport:
    """Sends a live number's messages through WhatsApp's Cloud API."""

    mode = "live"
    # A send may reach WhatsApp before any answer comes back: it is metered first.
    side_effect_free = False

    def __init__(self, config, session: requests.Session | None = None, *, cipher=None, sleep=time.sleep):
        self.config = config
        self.session = session or pooled_session(config.get("WHATSAPP_POOL_SIZE", 256))
        # The cipher the factory gives; without one, TOKEN_ENCRYPTION_KEY's keys in ``config``.
        self.tokens = TokenCache((cipher or TokenCipher(config)).decrypt)
        self.sleep = sleep

    def url(self, phone_number_id: str) -> str:
        return (f"{self.config['WHATSAPP_GRAPH_URL'].rstrip('/')}/{self.config['WHATSAPP_API_VERSION']}"
                f"/{phone_number_id}/messages")

    def send(self, number, payload: dict) -> SendResult:
        if not number.access_token_encrypted:
            return SendResult(ok=False, error_code=190, error_title="This number has no access token; "
                              "reconnect it in the portal.", http_status=401)
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Authorization": f"Bearer {self.tokens.token(number.access_token_encrypted)}",
                   "Content-Type": "application/json"}
        timeout = (self.config["WHATSAPP_CONNECT_TIMEOUT_SECONDS"], self.config["WHATSAPP_TIMEOUT_SECONDS"])
        url = self.url(number.phone_number_id)
        adapter = self.session.get_adapter(url)
        retries = self.config.get("WHATSAPP_SEND_RETRIES", 2)
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = adapter.send(_prepared(url, headers, data), timeout=timeout)
            except requests.ConnectionError as exc:
                # ConnectTimeout is one too. Only a connection never made is safe to try again.
                if _never_connected(exc) and not last:
                    self.sleep(self._backoff(attempt))
                    continue
                log.warning("cloud api send failed", extra={"error": type(exc).__name__})
                return _unreachable(exc)
            except requests.Timeout:
                log.warning("cloud api send timed out")
                return SendResult(ok=False, error_code=131000, timed_out=True, http_status=504,
                                  error_title="WhatsApp did not answer in time; the message may or may not "
                                              "have been sent, and it was not billed.")
            except requests.RequestException as exc:
                log.warning("cloud api send failed", extra={"error": type(exc).__name__})
                return _unreachable(exc)
            result = _read(response)
            if result.ok or last or result.error_code not in RETRYABLE_CODES:
                return result
            wait = _seconds(result.retry_after)
            if wait is None:
                wait = self._backoff(attempt)
            if wait > self.config.get("WHATSAPP_RETRY_AFTER_MAX_SECONDS", 2.0):
                return result
            self.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(0.1 * (2 ** attempt), LONGEST_BACKOFF)


def _prepared(url: str, headers: dict, data: bytes) -> PreparedRequest:
    """A POST for the session's adapter, built directly: a send carries no cookies, hooks or
    environment settings, and skipping the session's merging of them saves a third of the
    client's CPU per call. ``url`` is ours (settings and a validated number id), already normal."""
    prepared = PreparedRequest()
    prepared.method = "POST"
    prepared.url = url
    prepared.headers = CaseInsensitiveDict(headers)
    prepared.headers["Content-Length"] = str(len(data))
    prepared.body = data
    prepared.hooks = {"response": []}
    return prepared


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request cannot have reached Meta: the TCP (or TLS) connection was never made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "NameResolutionError" in text or "Connection refused" in text


def _unreachable(exc: Exception) -> SendResult:
    return SendResult(ok=False, error_code=131000, http_status=502,
                      error_title="WhatsApp's Cloud API could not be reached; the message was not sent.",
                      error_details=type(exc).__name__)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 3600 else None


def _read(response: requests.Response) -> SendResult:
    """Graph's answer to a send, success or refusal, as a SendResult."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
        wamid = first.get("id")
        if isinstance(wamid, str) and wamid and len(wamid) <= 128:
            contacts = body.get("contacts")
            contact = contacts[0] if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict) else {}
            wa_id = contact.get("wa_id") if isinstance(contact.get("wa_id"), str) else None
            status = first.get("message_status") if isinstance(first.get("message_status"), str) else None
            return SendResult(ok=True, wa_message_id=wamid, wa_id=(wa_id or None) and wa_id[:64],
                              message_status=status[:40] if status else None, http_status=200)
    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    if error is None:
        # Not Graph's JSON: a proxy's page, an empty 5xx. Meta's own failure, as WhatsApp reports it.
        return SendResult(ok=False, error_code=131000, http_status=502,
                          error_title=f"WhatsApp's Cloud API answered HTTP {response.status_code} without a "
                                      "message id; the message was not billed.")
    code = error.get("code") if isinstance(error.get("code"), int) else 131000
    data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
    title = error.get("message") if isinstance(error.get("message"), str) else "WhatsApp refused the message."
    details = data.get("details") if isinstance(data.get("details"), str) else None
    return SendResult(ok=False, error_code=code, error_title=title.replace("\x00", "")[:300],
                      error_details=details.replace("\x00", "")[:500] if details else None,
                      graph_error=error, http_status=response.status_code,
                      retry_after=response.headers.get("Retry-After"))
