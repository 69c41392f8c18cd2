"""Replies leave in batches: many runs claimed at once and sent through ``send_many``, one refused member not
holding back the others, each run sent at most once (a claim a stopped process left is settled from the
message its key names), and a run one worker claimed never taken by a second."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text as sql
from sqlalchemy import update

from tests.automation.helpers import add_rule, pro_shop, runs_of, sent_to, thread_entries
from tests.factories import usage_values
from tests.inbox.helpers import post_inbound, text
from tests.statements import statements_on

OPEN = ["16505550101", "16505550102"]   # wrote earlier: their windows are open
CLOSED = "16505550103"                  # never wrote: free text to them is refused by WhatsApp's rules


def queue_replies(app, shop, senders) -> list[int]:
    """``price?`` from each of ``senders`` delivered to the rules at once; the runs with a reply to send."""
    from saas.automation import engine
    from saas.extensions import db
    from saas.messaging import domain_events
    from saas.messaging.domain_events import NumberRef
    from saas.messaging.models import PhoneNumber

    with app.app_context():
        number = db.session.get(PhoneNumber, shop.number.id)
        ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number, number.waba_id)
        events = [domain_events.message_received(ref, f"wamid.batch-{sender}", sender,
                                                 text("price?", sender=sender, message_id=f"wamid.batch-{sender}"))
                  for sender in senders]
        due = engine.handle(db.session.connection(), events)
        db.session.commit()
        db.session.remove()
    return due


def open_windows(app, client, shop) -> None:
    for sender in OPEN:
        post_inbound(app, client, shop, text("hello", sender=sender), sender=sender)


def test_a_batch_sends_its_members_once_and_one_refused_by_the_rules_fails_alone(app, client, whatsapp):
    from saas.automation import sending

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    open_windows(app, client, shop)
    due = queue_replies(app, shop, [*OPEN, CLOSED])
    assert len(due) == 3
    before = usage_values(app, shop.tenant_id)
    with app.app_context(), statements_on(app, r"^UPDATE automation_runs SET status=\S+, claimed_at") as claims:
        assert sending.send_runs(due) == 2
        assert sending.send_runs(due) == 0  # claimed already: nothing sent again
        db_remove()
    assert len(claims) == 2  # one claim took the three runs; the second found none pending
    assert [len(sent_to(whatsapp, sender)) for sender in [*OPEN, CLOSED]] == [1, 1, 0]
    runs = {run.wa_id: run for run in runs_of(app, shop.tenant_id)}
    assert [runs[sender].status for sender in [*OPEN, CLOSED]] == ["sent", "sent", "failed"]
    assert runs[CLOSED].message_id is None and runs[CLOSED].error_code
    assert usage_values(app, shop.tenant_id) != before  # the two sent are metered
    keys = message_keys(app, shop.tenant_id)
    assert sorted(keys) == sorted(f"automation:{runs[sender].id}" for sender in OPEN)
    entries = thread_entries(app, shop.tenant_id)
    assert len([e for e in entries if e.direction == "out" and e.author == "automation"]) == 2
    assert len([e for e in entries if e.kind == "rule_run" and "reply not sent" in e.text]) == 1


def test_a_claim_a_stopped_process_left_is_settled_from_its_message_never_sent_twice(app, client, whatsapp):
    from saas.automation import sending
    from saas.automation.models import Run
    from saas.extensions import db
    from saas.messaging.models import Message

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    open_windows(app, client, shop)
    first, second = queue_replies(app, shop, OPEN)
    with app.app_context():
        assert sending.send_runs([first]) == 1
        long_ago = sending.utcnow() - sending.STALE_CLAIM - timedelta(seconds=1)
        # The first run's process stopped after its message was written, before WhatsApp answered; the
        # second's stopped right after the claim, before anything was written.
        db.session.execute(update(Run).where(Run.id.in_([first, second])).values(status="sending",
                                                                                 claimed_at=long_ago))
        db.session.execute(update(Message).where(Message.idempotency_key == f"automation:{first}")
                           .values(status="pending"))
        db.session.commit()
        assert sending.sweep() == 1  # the second was never written: sent now
        assert sending.sweep() == 0  # the first's outcome is unknown: left for the send service to settle
        db.session.execute(update(Message).where(Message.idempotency_key == f"automation:{first}")
                           .values(status="accepted"))
        db.session.commit()
        assert sending.recover() == 1
        db.session.remove()
    assert [len(sent_to(whatsapp, sender)) for sender in OPEN] == [1, 1]
    assert [run.status for run in runs_of(app, shop.tenant_id)] == ["sent", "sent"]


def test_a_run_one_worker_claimed_is_not_taken_by_a_second(app, client, whatsapp, backend):
    if backend != "postgresql":
        pytest.skip("two writers at once: PostgreSQL's SKIP LOCKED (SQLite has one writer at a time)")
    from saas.automation import sending
    from saas.extensions import db

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    open_windows(app, client, shop)
    [run_id] = queue_replies(app, shop, OPEN[:1])
    with app.app_context():
        with db.engine.connect() as first, db.engine.connect() as second:
            # The first worker's claim, its transaction still open.
            assert [row.id for row in first.execute(sending.claim_statement([run_id]))] == [run_id]
            # The second neither waits for the first's lock (it would fail here after 2 s) nor takes the run,
            # whether it asks for that run or for the oldest pending ones.
            second.execute(sql("SET LOCAL lock_timeout = '2s'"))
            assert second.execute(sending.claim_statement([run_id])).all() == []
            assert second.execute(sending.claim_statement()).all() == []
            second.rollback()
            first.commit()
        assert sending.send_runs([run_id]) == 0 and sending.sweep() == 0  # committed: it is the first's
        db.session.remove()
    assert sent_to(whatsapp, OPEN[0]) == []
    assert [run.status for run in runs_of(app, shop.tenant_id)] == ["sending"]


def db_remove() -> None:
    from saas.extensions import db

    db.session.remove()


def message_keys(app, tenant_id: int) -> list[str]:
    from sqlalchemy import select

    from saas.extensions import db
    from saas.messaging.models import Message

    with app.app_context():
        keys = list(db.session.scalars(select(Message.idempotency_key).where(
            Message.tenant_id == tenant_id, Message.direction == "out")))
        db.session.remove()
    return keys
