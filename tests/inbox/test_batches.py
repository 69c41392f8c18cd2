"""Settled sends and statuses reach threads in sets (saas.inbox.batches): a batch of any size costs the inbox
the same few statements, and leaves the rows one event at a time would (threads made with their contacts,
authors, ticks forward only, the thread's last message), handed over again or not."""
from __future__ import annotations

from datetime import timedelta

import pytest

from sqlalchemy import func, select

from saas import events
from saas.contacts.models import Contact
from saas.extensions import db
from saas.messaging.domain_events import send_settled
from saas.messaging.outbound import send_service
from saas.tenants.services import tenant_snapshot
from tests import whatsapp_payloads as wa
from tests.inbox.helpers import entries_of, make_shop, post_inbound, post_statuses, text, threads_of
from tests.messaging.live import add_template, template_payload
from tests.statements import statements_on

def inbox_statements(app):
    """The SQL statements run on the inbox's tables meanwhile."""
    return statements_on(app, r"\binbox_(threads|entries)\b")


def send_batch(app, shop, customers: list[str]) -> list:
    with app.app_context():
        tenant = tenant_snapshot(shop.tenant_id)
        db.session.remove()
    results = send_service(app).send_many(tenant, shop.number.phone_number_id,
                                          [template_payload(to, "shipping_update") for to in customers])
    assert all(result.accepted for result in results), results
    return results


def settle_in_one_delivery(app, shop, results, customers) -> None:
    """``send.settled`` for ``results`` published in one transaction, as a send publishes it, and delivered
    together by the sweep (as the deliverer takes what many requests committed)."""
    with app.app_context():
        events.publish(db.session.connection(), [
            send_settled(shop.tenant_id, result.message_id, to, "accepted", wa_message_id=result.wa_message_id)
            for result, to in zip(results, customers)])
        db.session.commit()
        assert events.sweep(older_than=timedelta(0)) == len(results)
        db.session.remove()


@pytest.mark.parametrize("settled_first", [True, False], ids=["settled-then-statuses", "statuses-only"])
def test_a_batch_of_sends_and_their_statuses_costs_the_inbox_the_same_statements_whatever_its_size(
        app, client, whatsapp, settled_first):
    shop = make_shop(app, whatsapp)
    whatsapp.add_template(shop.waba_id, "shipping_update")
    add_template(app, shop.tenant_id, shop.waba_id, "shipping_update")
    costs = []
    for first, size in ((0, 2), (100, 25)):
        customers = [f"1650555{n:04d}" for n in range(first, first + size)]
        results = send_batch(app, shop, customers)
        with inbox_statements(app) as settling:
            if settled_first:
                settle_in_one_delivery(app, shop, results, customers)
        with inbox_statements(app) as ticking:
            post_statuses(app, client, shop, *[wa.status(result.wa_message_id, status, recipient=to)
                                               for result, to in zip(results, customers)
                                               for status in ("sent", "delivered", "read")])
        costs.append((len(settling), len(ticking)))
    assert costs[0] == costs[1] and costs[0][1] > 0, costs

    threads = threads_of(app, shop.tenant_id)
    assert len(threads) == 27
    with app.app_context():
        contacts = db.session.scalar(select(func.count()).select_from(Contact).where(
            Contact.tenant_id == shop.tenant_id, Contact.id.in_([t.contact_id for t in threads])))
        db.session.remove()
    assert contacts == 27  # each thread has its own contact
    for thread in threads:
        # The business wrote first: resolved, nobody waiting, the message as the thread's last.
        assert (thread.status, thread.waiting_since, thread.unread) == ("resolved", None, 0)
        [entry] = entries_of(app, thread.id)
        assert (entry.direction, entry.author, entry.status, entry.type) == ("out", "api", "read", "template")
        assert thread.last_message_at == entry.at and thread.last_preview == entry.text


def test_statuses_handed_over_again_or_older_than_the_tick_change_nothing(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    whatsapp.add_template(shop.waba_id, "shipping_update")
    add_template(app, shop.tenant_id, shop.waba_id, "shipping_update")
    customers = ["16505550001", "16505550002"]
    results = send_batch(app, shop, customers)
    wamids = [result.wa_message_id for result in results]
    read_one = [wa.status(wamids[0], "read", recipient=customers[0]),
                wa.status(wamids[1], "delivered", recipient=customers[1])]
    post_statuses(app, client, shop, *read_one)
    post_statuses(app, client, shop, *read_one, wa.status(wamids[0], "delivered", recipient=customers[0]),
                  wa.status(wamids[1], "sent", recipient=customers[1]))
    ticks = {}
    for thread in threads_of(app, shop.tenant_id):
        [entry] = entries_of(app, thread.id)
        ticks[thread.wa_id] = entry.status
    assert ticks == {customers[0]: "read", customers[1]: "delivered"}
    post_statuses(app, client, shop, wa.failed(wamids[1], recipient=customers[1]))
    [failed] = [e for t in threads_of(app, shop.tenant_id) if t.wa_id == customers[1] for e in entries_of(app, t.id)]
    assert (failed.status, failed.error_code, failed.error_title) == ("failed", 131026, "Message undeliverable")


def test_a_batch_of_inbound_messages_costs_the_inbox_the_same_statements_whatever_its_size(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    costs = []
    for first, size in ((0, 2), (100, 12)):
        messages = [text(f"hello {n}", sender=f"1650555{n:04d}") for n in range(first, first + size)]
        with inbox_statements(app) as applying:
            post_inbound(app, client, shop, *messages)
        costs.append(len(applying))
    assert costs[0] == costs[1] and costs[0] > 0, costs
    threads = threads_of(app, shop.tenant_id)
    assert len(threads) == 14 and all(t.contact_id is not None and t.unread == 1 for t in threads)


def test_a_customers_messages_in_one_batch_land_as_they_would_one_by_one(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    messages = [text("second", offset=-60), text("third", offset=-10), text("first", offset=-120)]
    post_inbound(app, client, shop, *messages)
    [thread] = threads_of(app, shop.tenant_id)
    entries = entries_of(app, thread.id)
    assert [e.text for e in entries] == ["first", "second", "third"]
    assert (thread.status, thread.unread, thread.name) == ("open", 3, "Sheena Nelson")
    assert (thread.last_message_at, thread.last_preview) == (entries[-1].at, "third")
    assert thread.waiting_since == entries[0].at
    assert thread.window_expires_at == entries[-1].at + timedelta(hours=24)

    post_inbound(app, client, shop, *messages, text("fourth"))  # WhatsApp repeats them, with one more
    [thread] = threads_of(app, shop.tenant_id)
    assert [e.text for e in entries_of(app, thread.id)] == ["first", "second", "third", "fourth"]
    assert (thread.unread, thread.last_preview, thread.waiting_since) == (4, "fourth", entries[0].at)
