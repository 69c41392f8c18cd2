"""One notification per state reached, whatever the shops do: the same events in parallel on real
connections (PostgreSQL), and a sender that died before or after its send (both backends)."""
from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.outbound import send_service
from saas.orders import notifications
from saas.orders.fields import OrderData
from saas.orders.models import OrderNotification
from saas.orders.services import apply
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow
from tests.metering.test_concurrency import THREADS, pg_only, run_in_parallel  # noqa: F401  (pg_only: a fixture)
from tests.orders.helpers import CUSTOMER, Store

EVENTS = ("created", "paid", "packed", "shipped", "out_for_delivery", "delivered")


def test_parallel_duplicate_and_reordered_events_send_one_notification_per_state(pg_only, app, client):
    store = Store(client)
    store.map_all()
    orders = [f"P-{n}" for n in range(4)]
    # Every event of every order four times over, shuffled: duplicates and reorderings racing each other.
    jobs = [(reference, event) for reference in orders for event in EVENTS for _ in range(4)]
    random.Random(17).shuffle(jobs)

    def post(reference, event):
        return lambda c: c.post(f"/api/v1/orders/{reference}/events", headers=store.api.headers,
                                json={"event": event, "phone": CUSTOMER}).status_code

    statuses = run_in_parallel(app, [post(r, e) for r, e in jobs])
    assert set(statuses) <= {200, 201}
    notified = store.notifications()
    per_order = {reference: [event for ref, event, _ in notified if ref == reference] for reference in orders}
    for reference, events in per_order.items():
        assert len(events) == len(set(events)), (reference, events)
        assert "delivered" in events  # the last state is reached whatever came first
    assert statuses.count(201) == len(notified)  # each applied event is one notification, nothing more
    assert {status for *_, status in notified} == {"sent"}
    assert len(store.sent()) == len(notified)
    for reference in orders:
        assert store.call("GET", f"/api/v1/orders/{reference}").get_json()["state"] == "delivered"


def test_parallel_orders_create_of_one_reference_makes_one_order(pg_only, app, client):
    store = Store(client)
    store.map_all()
    statuses = run_in_parallel(app, [lambda c: c.post("/api/v1/orders/SAME/events", headers=store.api.headers,
                                                      json={"event": "created", "phone": CUSTOMER}).status_code
                                     for _ in range(THREADS * 2)])
    assert sorted(statuses) == [200] * (THREADS * 2 - 1) + [201]
    assert store.counts()["orders"] == 1 and len(store.sent()) == 1


def test_an_older_event_waits_for_a_newer_one_in_flight_and_then_changes_nothing(pg_only, app, client):
    """Two transactions on one order, interleaved for certain: ``delivered`` applied and not yet committed,
    ``paid`` arriving meanwhile waits for the order's row, then finds it delivered: stale, nothing written."""
    store = Store(client)
    store.map_all()
    store.event("W-1", "created", phone=CUSTOMER)
    with app.app_context():
        engine = db.engine
        db.session.remove()
    first = engine.connect()
    first_tx = first.begin()
    assert apply(first, store.tenant_id, "W-1", "delivered", OrderData(), source="api").applied
    found, backend = {}, {}
    begun = threading.Event()

    def later():
        with engine.begin() as conn:
            backend["pid"] = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            begun.set()
            found["paid"] = apply(conn, store.tenant_id, "W-1", "paid", OrderData(), source="api")

    waiter = threading.Thread(target=later)
    waiter.start()
    try:
        assert begun.wait(30)
        # Each read its own transaction (a transaction sees one snapshot of pg_stat_activity), and only the
        # second transaction's session: the sandbox's status walk may wait on the same order's thread too.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            waiting, deadline = None, time.monotonic() + 30
            while waiting != "Lock" and time.monotonic() < deadline:
                waiting = watcher.execute(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                                          {"pid": backend["pid"]}).scalar()
            assert waiting == "Lock"
        first_tx.commit()
    finally:
        if first_tx.is_active:  # a failed check must not leave the order locked for the next test
            first_tx.rollback()
        first.close()
        waiter.join(timeout=30)
    assert found["paid"].outcome == "stale"
    assert store.call("GET", "/api/v1/orders/W-1").get_json()["state"] == "delivered"
    assert [n[1] for n in store.notifications()] == ["created", "delivered"]


def pending_notification(app, store, reference: str) -> int:
    """An applied event whose sender died right after the commit: its notification is left pending."""
    with app.app_context():
        applied = apply(db.session.connection(), store.tenant_id, reference, "shipped",
                        OrderData(phone=CUSTOMER), source="api")
        db.session.commit()
        db.session.remove()
    return applied.notification_id


def age(app, notification_id: int, **values) -> None:
    with app.app_context():
        old = utcnow() - notifications.LEASE - timedelta(seconds=1)
        db.session.execute(update(OrderNotification).where(OrderNotification.id == notification_id)
                           .values(created_at=old, **values))
        db.session.commit()
        db.session.remove()


def sweep(app) -> int:
    with app.app_context():
        tried = notifications.deliver_due(db.session, send_service(app))
        db.session.remove()
    return tried


def test_a_notification_left_pending_by_a_crash_is_sent_once_by_the_sweep(app, client):
    store = Store(client)
    store.map_all()
    notification_id = pending_notification(app, store, "C-1")
    assert store.notifications() == [("C-1", "shipped", "pending")]
    assert sweep(app) == 0  # younger than the lease: its own sender may still be at it
    age(app, notification_id)
    assert sweep(app) == 1
    assert store.notifications() == [("C-1", "shipped", "sent")]
    assert sweep(app) == 0 and len(store.sent()) == 1


def test_a_sender_that_died_after_sending_is_not_sent_twice(app, client):
    store = Store(client)
    store.map_all()
    notification_id = pending_notification(app, store, "C-2")
    with app.app_context():
        tenant = tenant_snapshot(store.tenant_id)
        assert notifications.deliver(db.session, send_service(app), tenant, notification_id) == "sent"
        db.session.remove()
    # As if it died before recording the send: still claimed, the claim now stale.
    stale = utcnow() - notifications.LEASE - timedelta(seconds=1)
    age(app, notification_id, status="sending", claimed_at=stale, message_id=None)
    assert sweep(app) == 1
    assert store.notifications() == [("C-2", "shipped", "sent")]
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == store.tenant_id))
        row = db.session.get(OrderNotification, notification_id)
        assert row.message_id is not None and row.attempts == 2
        db.session.remove()
    assert count == 1  # the same Idempotency-Key and body: the first send's answer, nothing new


def test_a_claim_in_progress_is_left_to_its_sender(app, client):
    store = Store(client)
    store.map_all()
    notification_id = pending_notification(app, store, "C-3")
    age(app, notification_id, status="sending", claimed_at=utcnow())
    assert sweep(app) == 1
    assert store.notifications() == [("C-3", "shipped", "sending")] and store.sent() == []


def test_a_notification_whose_number_is_gone_fails_and_is_not_tried_again(app, client):
    store = Store(client)
    store.map_all()
    notification_id = pending_notification(app, store, "C-4")
    # What deleting the number leaves (the column is SET NULL).
    age(app, notification_id, phone_number_id=None)
    assert sweep(app) == 1
    assert store.notifications() == [("C-4", "shipped", "failed")]
    assert sweep(app) == 0 and store.sent() == []
