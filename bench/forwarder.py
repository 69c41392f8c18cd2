"""A bare Flask app with the send endpoint's shape: the floor the app is measured against.

    POST /<version>/<phone_number_id>/messages   Authorization: Bearer <key>

checks the key against FORWARDER_KEYS (comma-separated), parses the JSON body
and answers the Cloud API's success body with a fresh ``wamid.`` id. With
FORWARDER_INSERT=1 it also inserts one row per message into
``forwarder_messages`` (created by bench/run.py) in the database at
FORWARDER_DATABASE_URL or DATABASE_URL, autocommit, over a small per-process
pool of connections (psycopg_pool when installed).

Served by the Procfile's web command with ``wsgi:app`` replaced by
``forwarder:app``. Uses only blocking stdlib primitives (threading, queue), so
it works unchanged under gevent's monkey-patching.
"""
from __future__ import annotations

import os
import queue
import secrets
import threading
from contextlib import contextmanager

from flask import Flask, jsonify, request

KEYS = frozenset(key.strip() for key in os.environ.get("FORWARDER_KEYS", "").split(",") if key.strip())
INSERT = os.environ.get("FORWARDER_INSERT", "") == "1"
DATABASE_URL = os.environ.get("FORWARDER_DATABASE_URL") or os.environ.get("DATABASE_URL")
POOL_SIZE = int(os.environ.get("FORWARDER_POOL_SIZE", "10"))
INSERT_SQL = "INSERT INTO forwarder_messages (phone_number_id, recipient, wamid, body) VALUES (%s, %s, %s, %s)"

app = Flask(__name__)


class SimplePool:
    """At most ``size`` connections, made on first need and reused."""

    def __init__(self, url: str, size: int):
        self.url = url
        self.idle: queue.LifoQueue = queue.LifoQueue()
        self.slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self):
        import psycopg

        with self.slots:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.url, autocommit=True)
            try:
                yield conn
            finally:
                if conn.closed or conn.broken:
                    conn.close()
                else:
                    self.idle.put(conn)


_pool = None
_pool_lock = threading.Lock()


def pool():
    """The process's pool, made after the fork (on the first insert)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                try:
                    from psycopg_pool import ConnectionPool
                except ImportError:
                    _pool = SimplePool(DATABASE_URL, POOL_SIZE)
                else:
                    _pool = ConnectionPool(DATABASE_URL, min_size=1, max_size=POOL_SIZE,
                                           kwargs={"autocommit": True}, open=True)
    return _pool


def graph_error(status: int, code: int, message: str):
    return jsonify({"error": {"message": message, "type": "OAuthException", "code": code}}), status


@app.get("/")
def ready():
    return "ok"


@app.post("/<version>/<phone_number_id>/messages")
def send(version, phone_number_id):
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or key.strip() not in KEYS:
        return graph_error(401, 190, "Invalid OAuth access token.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("to"), str) or not body["to"]:
        return graph_error(400, 100, "Invalid parameter.")
    to = body["to"]
    wamid = "wamid." + secrets.token_urlsafe(24)
    if INSERT:
        with pool().connection() as conn:
            conn.execute(INSERT_SQL, (phone_number_id, to, wamid, request.get_data(as_text=True)))
    return jsonify({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": wamid}]})
