"""Replay: what a rule would have matched, sent and cost over the last 30 days equals what enabling it sends
on the same inbound messages."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from saas.extensions import db
from saas.messaging.models import Conversation, Message
from saas.timeutil import utcnow
from tests.automation.helpers import add_rule, pro_shop, runs_of
from tests.factories import usage_values
from tests.inbox.helpers import CUSTOMER, post_inbound, text

# (sender, text): three customers, one of them past the hourly cap, one message matching nothing.
TRAFFIC = [("16505550001", "price?"), ("16505550001", "price again"), ("16505550002", "hello"),
           ("16505550001", "PRICE 3"), ("16505550002", "the price"), ("16505550001", "price 4"),
           ("16505550003", "what price is it")]


def _feed(app, client, shop):
    for sender, words in TRAFFIC:
        post_inbound(app, client, shop, text(words, sender=sender), sender=sender)


def _sent(app, tenant_id) -> tuple[int, int]:
    with app.app_context():
        sends, opened = db.session.execute(select(func.count(Message.id), func.count().filter(
            Message.opened_conversation.is_(True))).where(Message.tenant_id == tenant_id,
                                                           Message.direction == "out")).one()
        db.session.remove()
    return sends, opened


def test_replay_counts_equal_what_enabling_the_rule_sends(app, client, whatsapp):
    trying, live = pro_shop(app, whatsapp), pro_shop(app, whatsapp)
    tried = add_rule(client, trying, name="prices", enabled=False)
    _feed(app, client, trying)
    assert runs_of(app, trying.tenant_id) == [] and _sent(app, trying.tenant_id) == (0, 0)
    replay = client.post(f"/api/v1/automation/rules/{tried['id']}/replay", headers=trying.headers)
    assert replay.status_code == 200, replay.get_json()
    preview = replay.get_json()
    before = usage_values(app, live.tenant_id)
    add_rule(client, live, name="prices", enabled=True)
    _feed(app, client, live)
    sends, opened = _sent(app, live.tenant_id)
    assert (preview["matched"], preview["sends"], preview["held"], preview["conversations"]) == (
        len(runs_of(app, live.tenant_id)), sends, 1, opened)
    assert (preview["sends"], preview["conversations"]) == (5, 3)
    after = usage_values(app, live.tenant_id)
    billed = {metric: after.get(metric, 0) - before.get(metric, 0) for metric in preview["billable_units"]}
    assert billed == preview["billable_units"] and preview["billable_units"] == {"conversations": 3}
    assert preview["matches"][0]["reply"] == {"type": "text", "text": {"body": "Prices: example.com"}}
    assert [m["held"] is not None for m in preview["matches"]] == [False, False, False, False, True, False]


def test_replay_reads_the_last_30_days_only_and_sends_nothing(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    rule = add_rule(client, shop, name="prices", enabled=False)
    post_inbound(app, client, shop, text("old price"))
    with app.app_context():
        db.session.execute(update(Message).where(Message.tenant_id == shop.tenant_id)
                           .values(created_at=utcnow() - timedelta(days=31)))
        db.session.commit()
        db.session.remove()
    post_inbound(app, client, shop, text("new price"))
    preview = client.post(f"/api/v1/automation/rules/{rule['id']}/replay", headers=shop.headers).get_json()
    assert (preview["scanned"], preview["matched"], preview["sends"]) == (1, 1, 1)
    assert [m["text"] for m in preview["matches"]] == ["new price"]
    assert preview["conversations"] == 1
    assert _sent(app, shop.tenant_id) == (0, 0)
    # A service conversation that was open with the customer then: the reply would have opened none.
    with app.app_context():
        now = utcnow()
        db.session.add(Conversation(tenant_id=shop.tenant_id, contact=CUSTOMER, category="service", seq=1,
                                    opened_at=now - timedelta(hours=1), expires_at=now + timedelta(hours=23),
                                    origin="business_initiated", period_start=now - timedelta(days=1)))
        db.session.commit()
        db.session.remove()
    again = client.post(f"/api/v1/automation/rules/{rule['id']}/replay", headers=shop.headers).get_json()
    assert (again["sends"], again["conversations"], again["billable_units"]) == (1, 0, {})
