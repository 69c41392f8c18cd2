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


REPLYING = [f"1650557{n:04d}" for n in range(4)]  # wrote first: waiting
NEW = "16505579999"  # never wrote: the reply makes the thread


def reply_items(app, shop, now) -> list[tuple]:
    """An automation's replies and lines as ``batches.record_replies`` takes them: the first customer
    answered then a reply failed (the same moment), the second only failed, a line alone for the third, and
    a customer with no thread yet answered."""
    from saas.inbox import threads

    by_wa_id = {thread.wa_id: thread.id for thread in threads_of(app, shop.tenant_id)}

    def reply(wa_id, message_id, line, failed=False):
        return (wa_id, threads.outbound_row(
            shop.tenant_id, None, message_id=message_id, wa_message_id=f"wamid.out{message_id}",
            author="automation", kind="text", content={"body": line}, line=line, at=now,
            status="failed" if failed else "accepted", error_title="Undeliverable" if failed else None, now=now))

    def line(wa_id, outcome):
        return (None, threads.rule_run_row(shop.tenant_id, by_wa_id[wa_id], "prices", outcome, now,
                                           detail={"run_id": 1, "code": "upstream_error"}))

    first, second, third, _ = REPLYING
    return [reply(first, 1, "one"), reply(first, 2, "two", failed=True), line(first, "reply not sent: two"),
            reply(second, 3, "three", failed=True), line(second, "reply not sent: three"),
            line(third, "reply not sent: refused"), reply(NEW, 4, "four")]


def replied(app, shop, now) -> tuple:
    threads = threads_of(app, shop.tenant_id)
    entries = [[(e.kind, e.author, e.direction, e.status, e.error_title, e.text, e.content, e.at == now)
                for e in sorted(entries_of(app, thread.id), key=lambda e: e.id)] for thread in threads]
    return entries, [(t.wa_id, t.status, t.last_preview, t.waiting_since is None, t.unread, t.updated_at == now,
                      t.contact_id is not None) for t in threads]


def test_a_batch_of_automated_replies_lands_as_one_by_one(app, client, whatsapp):
    from saas.inbox import batches, threads
    from saas.timeutil import utcnow

    together, alone = make_shop(app, whatsapp), make_shop(app, whatsapp)
    for shop in (together, alone):
        for customer in REPLYING:
            post_inbound(app, client, shop, text("price?", sender=customer), sender=customer)
    now = utcnow()
    items, items_alone = reply_items(app, together, now), reply_items(app, alone, now)
    with app.app_context():
        batches.record_replies(db.session.connection(), together.tenant_id, together.number.id, items, now)
        db.session.commit()
        conn = db.session.connection()
        for wa_id, row in items_alone:
            if wa_id is None:
                threads.log_rule_run(conn, alone.tenant_id, row["thread_id"], "prices",
                                     row["content"]["outcome"], detail={"run_id": 1, "code": "upstream_error"},
                                     now=now)
            else:
                threads.record_outbound(
                    conn, alone.tenant_id, number_pk=alone.number.id, wa_id=wa_id, message_id=row["message_id"],
                    wa_message_id=row["wa_message_id"], author="automation", kind="text", content=row["content"],
                    line=row["text"], at=now, status=row["status"], error_title=row["error_title"], now=now)
        db.session.commit()
        db.session.remove()
    rows = replied(app, together, now)
    assert rows == replied(app, alone, now)
    threads_ = {wa_id: rest for wa_id, *rest in rows[1]}
    first, second, third, _ = REPLYING
    assert threads_[first][:3] == ["open", "two", True]  # answered; the later of the moment is the last message
    assert threads_[second][:3] == ["open", "three", False]  # a failed reply answers nobody
    assert threads_[third][:4] == ["open", "price?", False, 1] and threads_[third][4]  # touched by its line
    assert threads_[NEW] == ["resolved", "four", True, 0, True, True]

    # Written again, WhatsApp's tick having moved on meanwhile: the entries are there, merged (the tick moved
    # forward), none twice.
    again = [(wa_id, dict(row, status="delivered" if row["status"] == "accepted" else row["status"]))
             for wa_id, row in reply_items(app, together, now) if wa_id is not None]
    with app.app_context():
        batches.record_replies(db.session.connection(), together.tenant_id, together.number.id, again, now)
        db.session.commit()
        db.session.remove()
    entries, threads_again = replied(app, together, now)
    assert threads_again == rows[1]
    assert [[entry[3] for entry in thread] for thread in entries] == [
        [status.replace("accepted", "delivered") if status else status for _, _, _, status, *_ in thread]
        for thread in rows[0]]
