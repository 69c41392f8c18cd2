"""A loopback HTTP server that answers like Meta's Graph API for WhatsApp Cloud API calls.

Tests register numbers (phone number id, WABA id, access token, profile), point
WHATSAPP_GRAPH_URL at ``fake.url`` and assert on ``fake.calls`` (method, path,
query, JSON or form body, headers). Answers follow Meta's documented shapes:

  POST   /{version}/{phone_number_id}/messages              send, mark read, typing indicator
  POST   /{version}/{phone_number_id}/media                 upload (multipart) -> {"id"}
  GET    /{version}/{media_id}                              media URL and metadata
  DELETE /{version}/{media_id}                              {"success": true}
  GET    /media/{media_id}                                  the media's bytes (the URL above)
  GET    /{version}/{phone_number_id}?fields=...            the number's info
  GET    /{version}/{phone_number_id}/whatsapp_business_profile
  POST   /{version}/{phone_number_id}/whatsapp_business_profile
  GET    /{version}/{waba_id}/message_templates             templates, paged
  POST   /{version}/{waba_id}/message_templates             create -> {"id", "status", "category"}
  DELETE /{version}/{waba_id}/message_templates?name=       {"success": true}

Failures are injected per call: ``fail("POST", "/messages", code=131026)`` answers
Graph's error envelope for that code with its documented HTTP status;
``fail(..., status=503)``; ``throttle(..., retry_after=2)`` answers 429 with
Retry-After; ``delay(..., seconds=3)``; ``drop(...)`` closes the connection
without an answer. ``while_sending(action)`` runs ``action(body)`` when a send arrives, before it is
answered: what happens elsewhere while WhatsApp holds the call (the database going away, recovery). ``latency`` delays every answer (a slow upstream). ``after=n`` lets n
matching calls through first (fail the second page of a listing). ``paging_base`` makes
template listings' ``paging.next`` point at another host.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.http_server import LoopbackHTTPServer

# Meta's error codes: (HTTP status, type, message). From the Cloud API's error code reference.
GRAPH_ERRORS = {
    0: (401, "OAuthException", "AuthException"),
    3: (403, "OAuthException", "API Method"),
    4: (429, "OAuthException", "(#4) Application request limit reached"),
    10: (403, "OAuthException", "(#10) Permission denied"),
    100: (400, "OAuthException", "(#100) Invalid parameter"),
    190: (401, "OAuthException", "Error validating access token: Session has expired"),
    200: (403, "OAuthException", "(#200) Permissions error"),
    368: (403, "OAuthException", "Temporarily blocked for policies violations"),
    80007: (429, "OAuthException", "(#80007) Rate limit issues"),
    130429: (429, "OAuthException", "(#130429) Rate limit hit"),
    131000: (500, "OAuthException", "(#131000) Something went wrong"),
    131005: (403, "OAuthException", "(#131005) Access denied"),
    131008: (400, "OAuthException", "(#131008) Required parameter is missing"),
    131009: (400, "OAuthException", "(#131009) Parameter value is not valid"),
    131016: (503, "OAuthException", "(#131016) Service unavailable"),
    131021: (400, "OAuthException", "(#131021) Recipient cannot be sender"),
    131026: (400, "OAuthException", "(#131026) Message undeliverable"),
    131031: (403, "OAuthException", "(#131031) Account has been locked"),
    131042: (400, "OAuthException", "(#131042) Business eligibility payment issue"),
    131045: (400, "OAuthException", "(#131045) Incorrect certificate"),
    131047: (400, "OAuthException", "(#131047) Re-engagement message"),
    131048: (400, "OAuthException", "(#131048) Spam rate limit hit"),
    131049: (400, "OAuthException", "(#131049) Meta chose not to deliver"),
    131051: (400, "OAuthException", "(#131051) Unsupported message type"),
    131052: (400, "OAuthException", "(#131052) Media download error"),
    131053: (400, "OAuthException", "(#131053) Media upload error"),
    131056: (400, "OAuthException", "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    132000: (400, "OAuthException", "(#132000) Number of parameters does not match the expected number of params"),
    132001: (404, "OAuthException", "(#132001) Template name does not exist in the translation"),
    132005: (400, "OAuthException", "(#132005) Translated text too long"),
    132007: (400, "OAuthException", "(#132007) Template Format Character Policy Violated"),
    132012: (400, "OAuthException", "(#132012) Parameter format does not match format in the created template"),
    132015: (400, "OAuthException", "(#132015) Template is Paused"),
    132016: (400, "OAuthException", "(#132016) Template is Disabled"),
}


def graph_error(code: int, details: str | None = None, subcode: int | None = None) -> tuple[int, dict]:
    status, type_, message = GRAPH_ERRORS.get(code, (400, "OAuthException", f"(#{code}) Error"))
    if 200 < code < 300:
        status, type_, message = 403, "OAuthException", f"(#{code}) Permissions error"
    error = {"message": message, "type": type_, "code": code,
             "error_data": {"messaging_product": "whatsapp", "details": details or message},
             "fbtrace_id": "A" + secrets.token_hex(11)}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}


@dataclass
class Number:
    phone_number_id: str
    waba_id: str
    token: str
    display_phone_number: str = "+1 555-010-0000"
    verified_name: str = "Acme Ltd"
    quality_rating: str = "GREEN"
    messaging_limit_tier: str = "TIER_1K"
    profile: dict = field(default_factory=lambda: {
        "about": "We answer within an hour.", "address": "1 Main St", "description": "Acme sells things",
        "email": "hello@acme.example.com", "profile_picture_url": "", "websites": ["https://acme.example.com"],
        "vertical": "RETAIL", "messaging_product": "whatsapp"})


@dataclass
class Call:
    method: str
    path: str
    query: dict
    body: object
    headers: dict
    answer: object = None  # the JSON answered, once answered (calls answer side by side: pair them by this)


@dataclass
class Injected:
    method: str
    path: str
    times: int
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    drop: bool = False
    after: int = 0  # matching calls to let through before this one applies


class FakeGraph:
    def __init__(self, version: str = "v23.0", latency: float = 0.0):
        self.version = version
        self.latency = latency
        self.numbers: dict[str, Number] = {}
        self.media: dict[str, dict] = {}
        self.templates: dict[str, list[dict]] = {}  # waba id -> templates
        self.calls: list[Call] = []
        self.injected: list[Injected] = []
        # Where template listings' paging.next points (None: this fake), to see a client never follows it elsewhere.
        self.paging_base: str | None = None
        self._reset_answers()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.server = LoopbackHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeGraph":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.numbers.clear()
            self.media.clear()
            self.templates.clear()
            self.calls.clear()
            self.injected.clear()
            self.latency = 0.0
            self.paging_base = None
            self._reset_answers()

    def _reset_answers(self) -> None:
        # The JSON of every answer given, in order; what a send's message_status is (None: Meta's
        # "accepted" for templates only); the wa_id Meta gives a recipient when it differs from the
        # digits sent; ``garbage`` answers every call with a 200 that is not JSON.
        self.answers: list = []
        self.message_status: str | None = None
        self.wa_ids: dict[str, str] = {}
        self.garbage = False
        self.on_send = None

    # -- setup and controls --------------------------------------------------------------------
    def add_number(self, phone_number_id: str | None = None, *, waba_id: str | None = None,
                   token: str | None = None, **info) -> Number:
        number = Number(phone_number_id or f"1{next(self._ids):014d}", waba_id or f"2{next(self._ids):014d}",
                        token or "EAAG" + secrets.token_urlsafe(24), **info)
        self.numbers[number.phone_number_id] = number
        return number

    def add_template(self, waba_id: str, name: str, *, language: str = "en_US", category: str = "UTILITY",
                     status: str = "APPROVED", components: list | None = None) -> dict:
        template = {"id": str(next(self._ids) + 900000000000000), "name": name, "language": language,
                    "category": category, "status": status,
                    "components": components or [{"type": "BODY", "text": "Hello {{1}}"}],
                    "parameter_format": "POSITIONAL"}
        self.templates.setdefault(waba_id, []).append(template)
        return template

    def fail(self, method: str, path: str, *, code: int | None = None, status: int | None = None,
             subcode: int | None = None, times: int = 1, after: int = 0) -> None:
        """The next ``times`` calls whose path ends with ``path`` answer Graph error ``code`` (or HTTP ``status``);
        with ``after``, only once that many such calls went through."""
        self.injected.append(Injected(method, path, times, status=status, code=code, subcode=subcode, after=after))

    def throttle(self, method: str, path: str, *, retry_after: float = 1, code: int = 130429, times: int = 1) -> None:
        self.injected.append(Injected(method, path, times, code=code, retry_after=retry_after))

    def delay(self, method: str, path: str, *, seconds: float, times: int = 1) -> None:
        self.injected.append(Injected(method, path, times, seconds=seconds))

    def drop(self, method: str, path: str, *, times: int = 1, after: int = 0) -> None:
        self.injected.append(Injected(method, path, times, drop=True, after=after))

    def while_sending(self, action) -> None:
        """Run ``action(body)`` in the server's thread when a send (POST .../messages) arrives, before it is answered."""
        self.on_send = action

    def requests(self, method: str | None = None, suffix: str | None = None) -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method)
                and (suffix is None or c.path.endswith(suffix))]

    def sends(self) -> list[dict]:
        """The JSON bodies of every POST .../messages received."""
        return [c.body for c in self.requests("POST", "/messages")]

    # -- serving -------------------------------------------------------------------------------
    def _injected_for(self, method: str, path: str) -> Injected | None:
        with self._lock:
            for injected in self.injected:
                if injected.method == method and path.endswith(injected.path) and injected.times > 0:
                    if injected.after > 0:
                        injected.after -= 1
                        continue
                    injected.times -= 1
                    return injected
        return None

    def _number_for(self, phone_number_id: str, headers) -> Number | tuple[int, dict]:
        number = self.numbers.get(phone_number_id)
        if number is None:
            return graph_error(100, f"Unsupported post request. Object with ID '{phone_number_id}' does not exist",
                               subcode=33)
        if headers.get("Authorization") != f"Bearer {number.token}":
            return graph_error(190, "Invalid OAuth access token.")
        return number

    def handle(self, method: str, path: str, query: dict, body, headers) -> tuple[int, dict, dict] | None:
        """(status, JSON, extra headers); None means: close the connection without answering."""
        call = Call(method, path, query, body, dict(headers))
        self.calls.append(call)
        answer = self._answer(method, path, query, body, headers)
        if answer is not None:
            call.answer = answer[1]
            self.answers.append(answer[1])
        return answer

    def _answer(self, method: str, path: str, query: dict, body, headers) -> tuple[int, dict, dict] | None:
        injected = self._injected_for(method, path)
        if self.latency:
            time.sleep(self.latency)
        if injected is not None:
            if injected.seconds:
                time.sleep(injected.seconds)
            if injected.drop:
                return None
            if injected.code is not None:
                status, answer = graph_error(injected.code, subcode=injected.subcode)
                extra = {"Retry-After": f"{injected.retry_after:g}"} if injected.retry_after is not None else {}
                return status, answer, extra
            if injected.status is not None:
                return injected.status, {"error": {"message": "Service temporarily unavailable", "type": "OAuthException",
                                                   "code": 2, "fbtrace_id": "A" + secrets.token_hex(11)}}, {}
        parts = path.strip("/").split("/")
        if parts[0] == "media" and len(parts) == 2 and method == "GET":
            return self._media_bytes(parts[1], headers)
        if not parts or parts[0] != self.version:
            return *graph_error(100, f"Unknown path components: /{'/'.join(parts)}"), {}
        return (*self._route(method, parts[1:], query, body, headers), {})

    def _route(self, method, parts, query, body, headers) -> tuple[int, dict]:
        if len(parts) == 2 and parts[1] == "messages" and method == "POST":
            return self._message(parts[0], body, headers)
        if len(parts) == 2 and parts[1] == "media" and method == "POST":
            return self._upload(parts[0], body, headers)
        if len(parts) == 2 and parts[1] == "whatsapp_business_profile":
            number = self._number_for(parts[0], headers)
            if isinstance(number, tuple):
                return number
            if method == "POST":
                number.profile.update({k: v for k, v in (body or {}).items() if k != "messaging_product"})
                return 200, {"success": True}
            return 200, {"data": [dict(number.profile)]}
        if len(parts) == 2 and parts[1] == "message_templates":
            return self._templates(method, parts[0], query, body, headers)
        if len(parts) == 1 and parts[0] in self.media:
            if method == "DELETE":
                del self.media[parts[0]]
                return 200, {"success": True}
            media = self.media[parts[0]]
            return 200, {"messaging_product": "whatsapp", "url": f"{self.url}/media/{parts[0]}",
                         "mime_type": media["mime_type"], "sha256": media["sha256"],
                         "file_size": len(media["data"]), "id": parts[0]}
        if len(parts) == 1 and method == "GET" and parts[0] in self.numbers:
            number = self._number_for(parts[0], headers)
            if isinstance(number, tuple):
                return number
            info = {"id": number.phone_number_id, "display_phone_number": number.display_phone_number,
                    "verified_name": number.verified_name, "quality_rating": number.quality_rating,
                    "messaging_limit_tier": number.messaging_limit_tier, "code_verification_status": "VERIFIED",
                    "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"}}
            fields = (query.get("fields") or [""])[0]
            if fields:
                info = {k: v for k, v in info.items() if k in fields.split(",") or k == "id"}
            return 200, info
        return graph_error(100, f"Unsupported {method.lower()} request. Object with ID '{parts[0]}' does not "
                                "exist, cannot be loaded due to missing permissions, or does not support this "
                                "operation.", subcode=33)

    def _message(self, phone_number_id, body, headers):
        number = self._number_for(phone_number_id, headers)
        if isinstance(number, tuple):
            return number
        if self.on_send is not None and isinstance(body, dict) and body.get("status") != "read":
            self.on_send(body)
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return graph_error(100, "The parameter messaging_product is required.")
        if body.get("status") == "read":
            return 200, {"success": True}
        if not body.get("to"):
            return graph_error(100, "The parameter to is required.")
        kind = body.get("type", "text")
        if kind not in body:
            return graph_error(131008, f"The parameter {kind} is required.")
        if kind == "template":
            template = body["template"]
            known = [t for t in self.templates.get(number.waba_id, [])
                     if t["name"] == template.get("name")
                     and t["language"] == (template.get("language") or {}).get("code")]
            if not known:
                return graph_error(132001, f"template name ({template.get('name')}) does not exist in "
                                           f"{(template.get('language') or {}).get('code')}")
        digits = "".join(ch for ch in str(body["to"]) if ch.isdigit())
        wamid = "wamid." + base64.b64encode(b"HBgL" + secrets.token_bytes(24)).decode().rstrip("=")
        message = {"id": wamid}
        if self.message_status is not None:
            message["message_status"] = self.message_status
        elif kind == "template":
            message["message_status"] = "accepted"
        return 200, {"messaging_product": "whatsapp",
                     "contacts": [{"input": body["to"], "wa_id": self.wa_ids.get(digits, digits)}],
                     "messages": [message]}

    def _upload(self, phone_number_id, body, headers):
        number = self._number_for(phone_number_id, headers)
        if isinstance(number, tuple):
            return number
        if not isinstance(body, dict) or "file" not in body:
            return graph_error(100, "The parameter file is required.")
        media_id = str(next(self._ids) + 700000000000000)
        data = body["file"]
        self.media[media_id] = {"data": data, "mime_type": body.get("type") or "application/octet-stream",
                                "sha256": hashlib.sha256(data).hexdigest(), "owner": phone_number_id}
        return 200, {"id": media_id}

    def _media_bytes(self, media_id, headers):
        media = self.media.get(media_id)
        if media is None:
            return 404, {"error": {"message": "Not found", "code": 100}}, {}
        return 200, media, {}

    def _templates(self, method, waba_id, query, body, headers):
        if not any(n.waba_id == waba_id and headers.get("Authorization") == f"Bearer {n.token}"
                   for n in self.numbers.values()):
            return graph_error(190, "Invalid OAuth access token.")
        templates = self.templates.setdefault(waba_id, [])
        if method == "GET":
            limit = int((query.get("limit") or ["25"])[0])
            start = int((query.get("after") or ["0"])[0])
            page = templates[start:start + limit]
            answer = {"data": page, "paging": {"cursors": {"before": str(start), "after": str(start + len(page))}}}
            if start + limit < len(templates):
                answer["paging"]["next"] = (f"{self.paging_base or self.url}/{self.version}/{waba_id}/message_templates"
                                            f"?limit={limit}&after={start + limit}")
            return 200, answer
        if method == "POST":
            body = body or {}
            if any(t["name"] == body.get("name") and t["language"] == body.get("language") for t in templates):
                return graph_error(100, "Message template already exists", subcode=2388024)
            template = self.add_template(waba_id, body.get("name"), language=body.get("language"),
                                         category=body.get("category"), status="PENDING",
                                         components=body.get("components"))
            return 200, {"id": template["id"], "status": "PENDING", "category": template["category"]}
        if method == "DELETE":
            name = (query.get("name") or [None])[0]
            before = len(templates)
            self.templates[waba_id] = [t for t in templates if t["name"] != name]
            if len(self.templates[waba_id]) == before:
                return graph_error(100, f"Template {name} not found", subcode=2593002)
            return 200, {"success": True}
        return graph_error(100, "Unsupported method")


def _handler(fake: FakeGraph):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            if kind.startswith("application/json"):
                try:
                    return json.loads(raw or b"null")
                except ValueError:
                    return raw
            if kind.startswith("multipart/form-data"):
                message = BytesParser(policy=email_policy).parsebytes(
                    b"Content-Type: " + kind.encode() + b"\r\n\r\n" + raw)
                form = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    data = part.get_payload(decode=True)
                    form[name] = data if name == "file" else data.decode()
                    if name == "file":
                        form["_file_type"] = part.get_content_type()
                        form["_filename"] = part.get_filename()
                return form
            if kind.startswith("application/x-www-form-urlencoded"):
                return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            return raw

        def _serve(self, method):
            parts = urlsplit(self.path)
            answer = fake.handle(method, parts.path, parse_qs(parts.query), self._body(), self.headers)
            if answer is None:  # a dropped connection
                self.close_connection = True
                self.connection.close()
                return
            status, payload, extra = answer
            if fake.garbage:
                payload, extra = {"data": b"<html>Bad gateway</html>", "mime_type": "text/html"}, {}
            if isinstance(payload, dict) and "data" in payload and isinstance(payload.get("data"), bytes):
                data, kind = payload["data"], payload["mime_type"]
            else:
                data, kind = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_DELETE(self):
            self._serve("DELETE")

    return Handler
