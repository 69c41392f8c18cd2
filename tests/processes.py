"""Work run in child processes: a second web process, or one that is killed mid-send.

Each child builds its own app from the parent's database URL, exactly as a
gunicorn worker does, and talks to the database over its own connections.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor


def build_app(url: str, **config):
    from saas import create_app

    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SERVER_NAME": None,
                       "HOUSEKEEPING": False, **config})


def send_in_threads(url: str, number: str, key: str, recipients: list[str], threads: int, start_at: float, out):
    """POST one send per recipient from ``threads`` threads, all starting at ``start_at``; put the statuses."""
    app = build_app(url)
    barrier = threading.Barrier(threads)

    def worker(chunk):
        client = app.test_client()
        barrier.wait()
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        return [client.post(f"/v23.0/{number}/messages", headers={"Authorization": f"Bearer {key}"}, json={
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}}).status_code
                for to in chunk]

    chunks = [recipients[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        out.put([status for statuses in pool.map(worker, chunks) for status in statuses])


class Hang:
    """A transport that never answers: the process is killed while it waits."""

    mode = "sandbox"

    def send(self, number, payload):
        time.sleep(3600)


def send_and_hang(url: str, tenant_id: int, number: str):
    """Meter a send, then hang in the transport until the parent kills this process."""
    from saas.billing import entitlements
    from saas.tenants.services import tenant_snapshot
    from tests.factories import service_with

    app = build_app(url)
    with app.app_context():
        service = service_with(Hang())
        tenant = tenant_snapshot(tenant_id)
        service.send(tenant, entitlements.for_tenant(tenant), number, {
            "messaging_product": "whatsapp", "to": "15551230077", "type": "text", "text": {"body": "lost"}})


def send_live(url: str, graph_url: str, number: str, key: str, body: dict):
    """POST one send to a live number, as a web process does; the parent kills this process while
    WhatsApp (the loopback Graph API) holds the call."""
    app = build_app(url, WHATSAPP_GRAPH_URL=graph_url, WHATSAPP_PAIR_RATE_BURST=0)
    app.test_client().post(f"/v23.0/{number}/messages", headers={"Authorization": f"Bearer {key}"}, json=body)
