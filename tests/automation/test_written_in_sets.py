"""A delivered batch's runs and thread lines, and a sent batch's replies, are written in sets: a batch of any
size costs the same statements on these tables, and leaves the rows one message (one reply) at a time would:
runs and their outcomes, loop guards counting within the batch, lines in the order things happened, authors,
statuses, previews, who is still waiting; a redelivered event does nothing a second time."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from saas.contacts.models import Contact, ContactLabel
from saas.extensions import db
from saas.inbox.models import Thread
from tests.automation.helpers import add_rule, pro_shop, runs_of, thread_entries
from tests.inbox.helpers import add_member, post_inbound, text, threads_of
from tests.statements import statements_on

REPLY = [{"type": "reply", "message": {"type": "text", "text": {"body": "Prices: example.com"}}}]
ALSO = [{"type": "reply", "message": {"type": "text", "text": {"body": "Also: example.org"}}}]


def handle(app, shop, messages: list[tuple[str, str, str]]) -> list[int]:
    """``message.received`` for each (sender, text, WhatsApp id), through the rules in one delivery; the runs
    with a reply to send."""
    from saas.automation import engine
    from saas.messaging import domain_events
    from saas.messaging.domain_events import NumberRef
    from saas.messaging.models import PhoneNumber

    with app.app_context():
        number = db.session.get(PhoneNumber, shop.number.id)
        ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number, number.waba_id)
        due = engine.handle(db.session.connection(), [
            domain_events.message_received(ref, wamid, sender, text(body, sender=sender, message_id=wamid))
            for sender, body, wamid in messages])
        db.session.commit()
        db.session.remove()
    return due


def customers(first: int, count: int) -> list[str]:
    return [f"1650556{n:04d}" for n in range(first, first + count)]


def rules_shop(app, client, whatsapp):
    """Prices (a label, a reply; goes on), support (an assignment, a reply; stops) and one support stops
    before; at most one automated reply per customer an hour."""
    shop = pro_shop(app, whatsapp)
    agent = add_member(app, shop.tenant_id, f"agent@t{shop.tenant_id}.example.com", "agent")
    add_rule(client, shop, name="prices", priority=1, stop_after_match=False,
             actions=[{"type": "add_label", "label": "asked"}, *REPLY])
    add_rule(client, shop, name="support", pattern="help", priority=2,
             actions=[{"type": "assign", "user_id": agent}, *ALSO])
    add_rule(client, shop, name="never", pattern="help", priority=3, actions=[{"type": "add_label", "label": "no"}])
    assert client.patch("/api/v1/automation/settings", json={"replies_per_hour": 1},
                        headers=shop.headers).status_code == 200
    return shop


A, B, C, D = customers(0, 4)
FIRST = [(A, "price?", "wamid.s1"), (B, "help", "wamid.s2"), (A, "price again", "wamid.s3"),
         (A, "help please", "wamid.s4"), (C, "price and help", "wamid.s5"), (B, "help!", "wamid.s6")]
# Delivered again with new messages: only the new ones run (and the guards count what the first wrote).
AGAIN = [*FIRST[3:], (D, "price", "wamid.s7"), (A, "price 3", "wamid.s8"), *FIRST[:3]]


def written(app, shop) -> dict:
    """What the rules wrote, without ids: runs, each thread's entries in order, the contacts' labels."""
    runs = runs_of(app, shop.tenant_id)
    names = {run.id: (run.rule_name, run.wa_message_id) for run in runs}
    by_thread = {thread.id: thread.wa_id for thread in threads_of(app, shop.tenant_id)}
    entries: dict[str, list] = {}
    # In the order written (the lines of a batch share its moment; an assignment's event has its own).
    for entry in sorted(thread_entries(app, shop.tenant_id), key=lambda entry: entry.id):
        content = dict(entry.content)
        if "run_id" in content:
            content["run_id"] = names[content["run_id"]]  # the run it names, by rule and message
            content.pop("rule_id")
        line = re.sub(r"member \d+", "member N", entry.text)  # the shops' agents have their own ids
        content["outcome"] = re.sub(r"member \d+", "member N", content.get("outcome", ""))
        entries.setdefault(by_thread[entry.thread_id], []).append(
            (entry.kind, entry.author, entry.direction, line, content))
    with app.app_context():
        labels = sorted(db.session.execute(select(Contact.wa_id, ContactLabel.label).join(
            ContactLabel, ContactLabel.contact_id == Contact.id).where(Contact.tenant_id == shop.tenant_id)).tuples())
        assignees = sorted(db.session.execute(select(Thread.wa_id, Thread.assignee_id.is_not(None)).where(
            Thread.tenant_id == shop.tenant_id)).tuples())
        db.session.remove()
    return {"runs": [(run.rule_name, run.wa_message_id, run.wa_id, run.status, run.body, run.error_title,
                      run.finished_at is None) for run in runs],
            "entries": entries, "labels": labels, "assignees": assignees}


def test_a_batch_writes_what_its_messages_one_by_one_would_and_a_redelivery_nothing_again(app, client, whatsapp):
    together, alone = rules_shop(app, client, whatsapp), rules_shop(app, client, whatsapp)
    due = [handle(app, together, FIRST), handle(app, together, AGAIN)]
    due_alone = [[run_id for message in FIRST for run_id in handle(app, alone, [message])],
                 [run_id for message in AGAIN for run_id in handle(app, alone, [message])]]
    rows, rows_alone = written(app, together), written(app, alone)
    assert rows == rows_alone
    ids = {run.id: (run.rule_name, run.wa_message_id) for run in runs_of(app, together.tenant_id)}
    ids_alone = {run.id: (run.rule_name, run.wa_message_id) for run in runs_of(app, alone.tenant_id)}
    assert [[ids[i] for i in ids_] for ids_ in due] == [[ids_alone[i] for i in ids_] for ids_ in due_alone]
    # What that is: A's first price is answered, then held (one an hour) with the help that stopped "never";
    # C gets prices, its help held; D's reply is queued on the redelivery, nobody's twice.
    assert [(rule, wamid, status) for rule, wamid, _, status, *_ in rows["runs"]] == [
        ("prices", "wamid.s1", "pending"), ("support", "wamid.s2", "pending"), ("prices", "wamid.s3", "skipped"),
        ("support", "wamid.s4", "skipped"), ("prices", "wamid.s5", "pending"), ("support", "wamid.s5", "skipped"),
        ("support", "wamid.s6", "skipped"), ("prices", "wamid.s7", "pending"), ("prices", "wamid.s8", "skipped")]
    assert [len(ids_) for ids_ in due] == [3, 1]
    # A's lines in the order things happened: the support rule's assignment after the earlier lines.
    assert [text.split(":")[0] for _, _, _, text, _ in rows["entries"][A]] == [
        "prices", "prices", "assigned automatically", "support", "prices"]
    assert rows["labels"] == [(A, "asked"), (C, "asked"), (D, "asked")]
    assert rows["assignees"] == [(A, True), (B, True), (C, True), (D, False)]
    assert handle(app, together, FIRST + AGAIN) == [] and written(app, together) == rows


def test_a_delivered_batch_costs_the_runs_and_the_threads_the_same_statements_whatever_its_size(
        app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices", priority=1, stop_after_match=False,
             actions=[{"type": "add_label", "label": "asked"}, *REPLY])
    add_rule(client, shop, name="also", priority=2, actions=ALSO)  # held: one reply an hour
    assert client.patch("/api/v1/automation/settings", json={"replies_per_hour": 1},
                        headers=shop.headers).status_code == 200
    costs = []
    for first, size in ((10, 2), (20, 12)):
        batch = [(sender, "price?", f"wamid.n{sender}") for sender in customers(first, size)]
        with statements_on(app, r"\b(automation_runs|inbox_entries|inbox_threads)\b") as seen:
            assert len(handle(app, shop, batch)) == size
        costs.append(len(seen))
    assert costs[0] == costs[1] and costs[0] > 0, costs
    assert [run.status for run in runs_of(app, shop.tenant_id)] == ["pending", "skipped"] * 14


OPEN, CLOSED, FAILING = customers(40, 2), customers(50, 1), customers(60, 1)


def replies_shop(app, client, whatsapp, open_=OPEN, closed=CLOSED, failing=FAILING):
    """Two rules replying to "price"; ``open_`` and ``failing`` wrote before (their windows are open), and all
    asked for prices: the runs queued, (those to ``failing`` apart)."""
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices", priority=1, stop_after_match=False, actions=REPLY)
    add_rule(client, shop, name="also", priority=2, actions=ALSO)
    for sender in [*open_, *failing]:
        post_inbound(app, client, shop, text("hello", sender=sender), sender=sender)
    due = handle(app, shop, [(sender, "price?", f"wamid.r{sender}") for sender in [*open_, *closed]])
    failing_due = handle(app, shop, [(sender, "price?", f"wamid.r{sender}") for sender in failing])
    return shop, due, failing_due


def replies_written(app, shop) -> dict:
    """The threads and their entries in the order written, without ids."""
    runs = {run.id: run.rule_name for run in runs_of(app, shop.tenant_id)}
    threads = threads_of(app, shop.tenant_id)
    by_thread = {thread.id: thread.wa_id for thread in threads}
    entries: dict[str, list] = {}
    for entry in sorted(thread_entries(app, shop.tenant_id), key=lambda entry: entry.id):
        content = dict(entry.content)
        if "run_id" in content:
            content["run_id"] = runs[content["run_id"]]
            content.pop("rule_id", None)
        entries.setdefault(by_thread[entry.thread_id], []).append(
            (entry.kind, entry.author, entry.direction, entry.status, entry.error_title, entry.text, content))
    return {"entries": entries,
            "threads": [(t.wa_id, t.status, t.last_preview, t.waiting_since is None, t.unread,
                         t.last_message_at is not None) for t in threads],
            "runs": [(run.rule_name, run.wa_id, run.status) for run in runs_of(app, shop.tenant_id)]}


def send_failing(app, whatsapp, run_ids, one_by_one: bool) -> None:
    from saas.automation import sending

    whatsapp.fail("POST", "/messages", code=131026, times=len(run_ids))  # Meta: message undeliverable
    with app.app_context():
        for batch in ([[run_id] for run_id in run_ids] if one_by_one else [run_ids]):
            assert sending.send_runs(batch) == 0
        db.session.remove()


def test_a_sent_batch_writes_the_threads_what_its_replies_one_by_one_would(app, client, whatsapp):
    from saas.automation import sending
    from saas.automation.models import Run

    together, due, failing = replies_shop(app, client, whatsapp)
    alone, due_alone, failing_alone = replies_shop(app, client, whatsapp)
    with app.app_context():
        assert sending.send_runs(due) == 4
        assert [sending.send_runs([run_id]) for run_id in due_alone] == [1, 1, 1, 1, 0, 0]
        db.session.remove()
    send_failing(app, whatsapp, failing, one_by_one=False)
    send_failing(app, whatsapp, failing_alone, one_by_one=True)
    rows, rows_alone = replies_written(app, together), replies_written(app, alone)
    # A send Meta refused is written by its settling (send.settled) before its run's outcome: a batch's two
    # come before the lines saying why, one by one they alternate. The same entries, merged, not twice.
    for written_ in (rows, rows_alone):
        written_["entries"][FAILING[0]].sort(key=repr)
    assert rows == rows_alone
    # What that is: the open customers answered twice (the later reply the thread's last), nobody waiting;
    # the closed one refused (lines say why); the failing one's replies failed at Meta, still waiting.
    def lines(sender):  # what was written after the rules' own lines
        return [(kind, author, status, bool(title), text) for kind, author, _, status, title, text, _
                in rows["entries"][sender][-4:]]

    for sender in OPEN:
        assert lines(sender)[2:] == [("message", "automation", "accepted", False, "Prices: example.com"),
                                     ("message", "automation", "accepted", False, "Also: example.org")]
    assert [text.split(":")[:2] for *_, text in lines(CLOSED[0])] == [
        ["prices", " reply queued (text)"], ["also", " reply queued (text)"],
        ["prices", " reply not sent"], ["also", " reply not sent"]]
    assert [(kind, status, bool(title), "not sent" in text) for kind, _, direction, status, title, text, _
            in rows["entries"][FAILING[0]] if direction == "out" or "not sent" in text] == [
        ("message", "failed", True, False), ("message", "failed", True, False), ("rule_run", None, False, True),
        ("rule_run", None, False, True)]
    threads = {wa_id: (preview, answered) for wa_id, _, preview, answered, *_ in rows["threads"]}
    assert [threads[sender] for sender in OPEN] == [("Also: example.org", True)] * 2
    assert threads[FAILING[0]] == ("Also: example.org", False)  # a failed reply is the last message too

    # A claim a stopped process left, settled from its message: the entry is there, merged, not written again.
    with app.app_context():
        long_ago = sending.utcnow() - sending.STALE_CLAIM - timedelta(seconds=1)
        db.session.execute(update(Run).where(Run.id.in_(due[:2])).values(status="sending", claimed_at=long_ago))
        db.session.commit()
        assert sending.recover() == 2
        db.session.remove()
    again = replies_written(app, together)
    again["entries"][FAILING[0]].sort(key=repr)
    assert again == rows


def test_a_sent_batch_costs_the_threads_the_same_statements_whatever_its_size(app, client, whatsapp):
    from saas.automation import sending

    costs = []
    for first, size in ((70, 1), (80, 5)):
        shop, due, _ = replies_shop(app, client, whatsapp, customers(first, size), customers(first + 5, size), [])
        with app.app_context(), statements_on(app, r"\binbox_(threads|entries)\b") as seen:
            assert sending.send_runs(due) == 2 * size
            db.session.remove()
        costs.append(len(seen))
    assert costs[0] == costs[1] and costs[0] > 0, costs


def test_a_run_another_delivery_wrote_meanwhile_rolls_the_batch_back_and_its_retry_does_it_once(
        app, client, whatsapp, backend):
    if backend != "postgresql":
        pytest.skip("two writers at once: PostgreSQL (SQLite has one writer at a time)")
    from sqlalchemy import event, insert

    from saas.automation.models import Run
    from saas.automation.runs import WrittenMeanwhile
    from saas.timeutil import utcnow

    shop = pro_shop(app, whatsapp)
    rule = add_rule(client, shop, name="prices", actions=[{"type": "add_label", "label": "asked"}, *REPLY])
    batch = [(sender, "price?", f"wamid.m{sender}") for sender in customers(90, 2)]

    wrote: list[bool] = []

    def write_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO automation_runs") and not wrote:
            wrote.append(True)  # another delivery's run, committed just before the batch writes its own
            with engine.begin() as other:
                other.execute(insert(Run).values(
                    tenant_id=shop.tenant_id, rule_id=rule["id"], rule_name="prices", wa_message_id=batch[1][2],
                    phone_number_id=shop.number.id, wa_id=batch[1][0], status="done", created_at=utcnow()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", write_first)
    try:
        with pytest.raises(WrittenMeanwhile):
            handle(app, shop, batch)
    finally:
        event.remove(engine, "before_cursor_execute", write_first)
    with app.app_context():
        db.session.remove()
    assert [(run.wa_id, run.status) for run in runs_of(app, shop.tenant_id)] == [(batch[1][0], "done")]
    assert len(handle(app, shop, batch)) == 1  # delivered again: the other's run is left as it is
    assert [(run.wa_id, run.status) for run in runs_of(app, shop.tenant_id)] == [
        (batch[1][0], "done"), (batch[0][0], "pending")]
    lines = [entry.text for entry in thread_entries(app, shop.tenant_id) if entry.kind == "rule_run"]
    assert lines == ["prices: label 'asked' added; reply queued (text)"]
