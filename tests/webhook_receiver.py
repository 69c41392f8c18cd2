"""A tenant's webhook endpoint for tests: a real HTTP server on loopback that records what it gets.

``answers`` is a list of what to do with the next requests, one item each:
an HTTP status, ``("slow", seconds, status)`` to answer late, ``("hold",
threading.Event, status)`` to answer once the test sets the event (at most
30 s), or ``("redirect", url)``; once it is used up every request gets ``default``.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.http_server import LoopbackHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


class Receiver:
    def __init__(self):
        self.answers: list = []
        self.default = 200
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if isinstance(answer, tuple) and answer[0] == "slow":
                    time.sleep(answer[1])
                    answer = answer[2]
                if isinstance(answer, tuple) and answer[0] == "hold":
                    answer[1].wait(30)
                    answer = answer[2]
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = b"ok" if answer < 300 else b"receiver says no"
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/whatsapp"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Receiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[tuple[str, str]]:
        """(kind, what) of each payload received, in order: ("status", "sent"), ("message", "text")..."""
        out = []
        for r in self.received:
            value = r.json["entry"][0]["changes"][0]["value"]
            if "statuses" in value:
                out.append(("status", value["statuses"][0]["status"]))
            else:
                out.append(("message", value["messages"][0]["type"]))
        return out
