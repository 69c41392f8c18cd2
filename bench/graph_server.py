"""WhatsApp's Graph API for the benchmark: answers every send after a fixed delay, for little CPU.

    python bench/graph_server.py --port 0 --delay-ms 200 --token EAAG...

Prints ``GRAPH_FAKE_PORT <port>`` once it listens on 127.0.0.1. Speaks just
enough HTTP/1.1 (request line, Content-Length, keep-alive, pipelining) on
one asyncio event loop: no threads, no framework, one timer per request, so
thousands of connections waiting out the delay cost next to nothing.

  POST /{version}/{phone_number_id}/messages
      after --delay-ms, Meta's success body:
      {"messaging_product":"whatsapp","contacts":[{"input":to,"wa_id":to}],"messages":[{"id":"wamid..."}]}
      (with "message_status":"accepted" for a template); 401 with Graph's
      error 190 for a bearer token other than --token (when given); 400 for
      a body that is not JSON with a "to".
  GET /_bench/stats
      at once: {"received": sends received, "answered": 200s written,
      "refused": 4xx written, "open": connections open, "max_open": most at once}.
  GET /_bench/arrivals
      at once: {recipient: when the first send to it arrived (seconds since the epoch)}.

Anything else answers 404 in Graph's error shape.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import signal
import sys
import time

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024


class Stats:
    def __init__(self):
        self.received = self.answered = self.refused = self.open = self.max_open = 0

    def as_json(self) -> bytes:
        return json.dumps({"received": self.received, "answered": self.answered, "refused": self.refused,
                           "open": self.open, "max_open": self.max_open}).encode()


def response(status: int, reason: str, body: bytes, keep_alive: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("latin-1") + body


def graph_error(code: int, message: str, kind: str = "OAuthException") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code,
                                 "fbtrace_id": "Abench" + base64.b64encode(os.urandom(9)).decode()}}).encode()


def new_wamid() -> str:
    return "wamid." + base64.b64encode(b"HBgL" + os.urandom(24)).decode().rstrip("=")


class GraphProtocol(asyncio.Protocol):
    """One client connection; answers go out in request order, each when its delay is over."""

    def __init__(self, server: "GraphServer"):
        self.server = server
        self.buffer = bytearray()
        self.pending: collections.deque = collections.deque()  # [answer bytes or None, keep_alive]
        self.transport = None
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        stats = self.server.stats
        stats.open += 1
        stats.max_open = max(stats.max_open, stats.open)

    def connection_lost(self, exc):
        self.server.stats.open -= 1
        self.transport = None

    def data_received(self, data: bytes):
        self.buffer += data
        while not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.fail(431, "Request Header Fields Too Large")
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self.fail(400, "Bad Request")
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.fail(400, "Bad Request")
                return
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            keep_alive = headers.get("connection", "").lower() != "close" and parts[2] == "HTTP/1.1"
            self.handle(parts[0], parts[1], headers, body, keep_alive)

    def handle(self, method: str, target: str, headers: dict, body: bytes, keep_alive: bool) -> None:
        path = target.split("?", 1)[0].strip("/").split("/")
        stats = self.server.stats
        if method == "GET" and path == ["_bench", "stats"]:
            self.queue(response(200, "OK", stats.as_json(), keep_alive), keep_alive, delay=0)
            return
        if method == "GET" and path == ["_bench", "arrivals"]:
            self.queue(response(200, "OK", json.dumps(self.server.arrivals).encode(), keep_alive), keep_alive, delay=0)
            return
        if method != "POST" or len(path) != 3 or path[2] != "messages":
            stats.refused += 1
            answer = graph_error(100, "Unsupported request - method type: " + method.lower(), "GraphMethodException")
            self.queue(response(404, "Not Found", answer, keep_alive), keep_alive, delay=0)
            return
        stats.received += 1
        token = self.server.token
        if token is not None and headers.get("authorization") != "Bearer " + token:
            stats.refused += 1
            answer = graph_error(190, "Error validating access token: Session has expired")
            self.queue(response(401, "Unauthorized", answer, keep_alive), keep_alive, delay=self.server.delay)
            return
        try:
            payload = json.loads(body)
            to = payload["to"]
            self.server.arrivals.setdefault(str(to), time.time())
        except (ValueError, TypeError, KeyError):
            stats.refused += 1
            answer = graph_error(100, "(#100) Invalid parameter")
            self.queue(response(400, "Bad Request", answer, keep_alive), keep_alive, delay=self.server.delay)
            return
        message = {"id": new_wamid()}
        if payload.get("type") == "template":
            message["message_status"] = "accepted"
        answer = json.dumps({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                             "messages": [message]}, separators=(",", ":")).encode()
        self.queue(response(200, "OK", answer, keep_alive), keep_alive, delay=self.server.delay, ok=True)

    def queue(self, answer: bytes, keep_alive: bool, *, delay: float, ok: bool = False) -> None:
        slot = [None, keep_alive, ok]
        self.pending.append(slot)
        if not keep_alive:
            self.closing = True  # read no further requests on this connection

        def ready():
            slot[0] = answer
            self.flush()

        if delay:
            self.server.loop.call_later(delay, ready)
        else:
            ready()

    def flush(self) -> None:
        while self.pending and self.pending[0][0] is not None:
            answer, keep_alive, ok = self.pending.popleft()
            if self.transport is None:
                continue  # the client left before its answer: not answered
            self.transport.write(answer)
            if ok:
                self.server.stats.answered += 1
            if not keep_alive:
                self.transport.close()
                self.pending.clear()

    def fail(self, status: int, reason: str) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.write(response(status, reason, graph_error(100, reason), keep_alive=False))
            self.transport.close()


class GraphServer:
    def __init__(self, loop, delay: float, token: str | None):
        self.loop, self.delay, self.token = loop, delay, token
        self.stats = Stats()
        self.arrivals: dict[str, float] = {}  # recipient -> when its first send arrived


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    graph = GraphServer(loop, args.delay_ms / 1000, args.token)
    server = await loop.create_server(lambda: GraphProtocol(graph), "127.0.0.1", args.port, backlog=4096,
                                      reuse_address=True)
    print(f"GRAPH_FAKE_PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    print(f"GRAPH_FAKE_STATS {graph.stats.as_json().decode()}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="how long each send waits (default 200)")
    parser.add_argument("--token", help="the only bearer token accepted (default: any)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
