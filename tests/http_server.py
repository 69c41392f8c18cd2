"""The HTTP server behind the test doubles on loopback (Graph, Stripe, a tenant's webhook receiver)."""
from __future__ import annotations

from http.server import ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    # Set before listen(): many calls arrive at once in the concurrency tests, and a backlog of
    # socketserver's default 5 overflows into connections reset under load.
    request_queue_size = 1024
    daemon_threads = True
