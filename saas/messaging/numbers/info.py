"""What WhatsApp's Graph API says of a phone number, read with the tenant's own token.

``GET {WHATSAPP_GRAPH_URL}/{WHATSAPP_API_VERSION}/{phone_number_id}?fields=...``
with ``Authorization: Bearer <token>``. Used to check a number before it is
connected and whenever the tenant tests its connection. The URL, version and
timeouts are read from the settings at every call, so a changed setting (a
test's loopback Graph API) applies at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import requests

FIELDS = "display_phone_number,verified_name,quality_rating,messaging_limit_tier,code_verification_status"

# Meta's codes for a token that cannot be used, and for one that may not see the number.
BAD_TOKEN_CODES = {0, 190}
PERMISSION_CODES = {3, 10, 200, 131005}
UNKNOWN_OBJECT_CODES = {100, 803}

MESSAGE_LENGTH = 240


def _text(value, limit: int) -> str | None:
    """An upstream string made safe to store: text, no NUL, at most ``limit`` characters."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).replace("\x00", "").strip()
    return text[:limit] or None


@dataclass(frozen=True)
class NumberInfo:
    phone_number_id: str
    display_phone_number: str | None
    verified_name: str | None
    quality_rating: str | None
    messaging_limit_tier: str | None
    code_verification_status: str | None

    @classmethod
    def of(cls, phone_number_id: str, body: dict) -> "NumberInfo":
        # Bounded to the columns they are stored in: Meta's answer is not ours to trust blindly.
        return cls(phone_number_id=phone_number_id,
                   display_phone_number=_text(body.get("display_phone_number"), 32),
                   verified_name=_text(body.get("verified_name"), 200),
                   quality_rating=_text(body.get("quality_rating"), 20),
                   messaging_limit_tier=_text(body.get("messaging_limit_tier"), 30),
                   code_verification_status=_text(body.get("code_verification_status"), 40))


class LookupFailed(Exception):
    """The Graph API could not be asked, or refused; ``message`` is a sentence for the tenant.

    ``code`` is Meta's error code when Meta answered with one (190, 100, 10 ...),
    None when it could not be reached or answered something else.
    """

    def __init__(self, message: str, *, code: int | None = None, subcode: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode

    @property
    def about_token(self) -> bool:
        return self.code in BAD_TOKEN_CODES or self.code in PERMISSION_CODES or (
            self.code is not None and 200 <= self.code < 300)

    @property
    def about_number(self) -> bool:
        return self.code in UNKNOWN_OBJECT_CODES


def _graph_refusal(status: int, body) -> LookupFailed:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return LookupFailed(f"WhatsApp's Graph API answered HTTP {status} without an explanation. "
                            "Try again in a moment.")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = _text(error.get("message"), MESSAGE_LENGTH) or "no message"
    data = error.get("error_data")
    details = _text(data.get("details"), MESSAGE_LENGTH) if isinstance(data, dict) else None
    if details and details not in message:
        message = f"{message}: {details}"
    label = f"code {code}" if code is not None else f"HTTP {status}"
    return LookupFailed(f"WhatsApp refused ({label}): {message}"[:300], code=code, subcode=subcode)


class NumberInfoClient:
    """Reads a number's info from the Graph API; built once by the factory, shared by requests.

    ``settings`` is the app's config (read per call); ``session`` a
    requests.Session (its connection pool is reused between calls).
    """

    def __init__(self, settings, session: requests.Session | None = None):
        self.settings = settings
        self.session = session or requests.Session()

    def fetch(self, phone_number_id: str, token: str) -> NumberInfo:
        """The number's info as Meta reports it. Raises LookupFailed, never anything else of requests'."""
        base = self.settings["WHATSAPP_GRAPH_URL"].rstrip("/")
        url = f"{base}/{self.settings['WHATSAPP_API_VERSION']}/{phone_number_id}"
        timeout = (self.settings["WHATSAPP_CONNECT_TIMEOUT_SECONDS"], self.settings["WHATSAPP_TIMEOUT_SECONDS"])
        try:
            response = self.session.get(url, params={"fields": FIELDS}, timeout=timeout, allow_redirects=False,
                                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            try:
                body = response.json()
            except ValueError:
                body = None
        except requests.Timeout:
            raise LookupFailed(f"WhatsApp's Graph API did not answer within {timeout[1]:g} seconds. "
                               "Try again in a moment.") from None
        except requests.RequestException:
            raise LookupFailed("WhatsApp's Graph API could not be reached. "
                               "Try again in a moment.") from None
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            raise _graph_refusal(response.status_code, body)
        return NumberInfo.of(phone_number_id, body)
