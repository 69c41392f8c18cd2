"""No loops: a message an automation sent never triggers a rule, a thread gets at most the tenant's hourly
cap of automated replies, and two of our numbers answering each other automatically stop at the first."""
from __future__ import annotations

from sqlalchemy import update

from saas.automation import engine
from saas.extensions import db
from saas.messaging import domain_events
from saas.messaging.domain_events import NumberRef
from saas.messaging.models import PhoneNumber
from tests import whatsapp_payloads as wa
from tests.automation.helpers import add_rule, pro_shop, runs_of, sent_to, thread_entries
from tests.inbox.helpers import CUSTOMER, post_inbound, text

ECHO = {"type": "text", "text": {"body": "hello! This is an automated answer."}}


def _display(app, shop, display: str) -> str:
    with app.app_context():
        db.session.execute(update(PhoneNumber).where(PhoneNumber.id == shop.number.id)
                           .values(display_number=display))
        db.session.commit()
        db.session.remove()
    return "".join(ch for ch in display if ch.isdigit())


def test_two_of_our_numbers_answering_each_other_stop_at_the_first_answer(app, client, whatsapp):
    first, second = pro_shop(app, whatsapp), pro_shop(app, whatsapp)
    first_digits = _display(app, first, "+1 555-010-1111")
    second_digits = _display(app, second, "+1 555-010-2222")
    for shop in (first, second):
        add_rule(client, shop, name="echo", pattern="hello", actions=[{"type": "reply", "message": ECHO}])
    # The second number writes to the first; from then on WhatsApp carries each one's sends to the other.
    post_inbound(app, client, first, text("hello there", sender=second_digits), sender=second_digits)
    relayed = 0
    for _ in range(10):
        to_second = sent_to(whatsapp, second_digits)[relayed:]
        if not to_second:
            break
        for message in to_second:
            post_inbound(app, client, second, text(message["text"]["body"], sender=first_digits),
                         sender=first_digits)
        relayed += len(to_second)
        for message in sent_to(whatsapp, first_digits)[relayed - len(to_second):]:
            post_inbound(app, client, first, text(message["text"]["body"], sender=second_digits),
                         sender=second_digits)
    assert len(sent_to(whatsapp, second_digits)) == 1
    assert sent_to(whatsapp, first_digits) == []
    [held] = [e for e in thread_entries(app, second.tenant_id) if e.kind == "rule_run"]
    assert "reply held" in held.text and "one of our numbers" in held.text
    assert [r.status for r in runs_of(app, second.tenant_id)] == ["skipped"]


def test_a_thread_gets_at_most_the_hourly_cap_of_automated_replies(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    for n in range(5):
        post_inbound(app, client, shop, text(f"price {n}?"))
    assert len(sent_to(whatsapp, CUSTOMER)) == 3  # the default cap
    assert [r.status for r in runs_of(app, shop.tenant_id)] == ["sent"] * 3 + ["skipped"] * 2
    held = [e for e in thread_entries(app, shop.tenant_id) if e.kind == "rule_run" and "held" in e.text]
    assert len(held) == 2 and "3 automated replies" in held[0].text
    # Another customer's thread has its own count.
    post_inbound(app, client, shop, text("price?", sender="16505550000"), sender="16505550000")
    assert len(sent_to(whatsapp, "16505550000")) == 1


def test_the_cap_is_the_tenant_setting(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    assert client.patch("/api/v1/automation/settings", json={"replies_per_hour": 1},
                        headers=shop.headers).get_json() == {"timezone": "UTC", "replies_per_hour": 1}
    add_rule(client, shop, name="prices")
    post_inbound(app, client, shop, text("price?"))
    post_inbound(app, client, shop, text("price??"))
    assert len(sent_to(whatsapp, CUSTOMER)) == 1


def test_a_message_an_automation_sent_never_triggers_a_rule(app, client, whatsapp):
    shop, other = pro_shop(app, whatsapp), pro_shop(app, whatsapp)
    add_rule(client, shop, name="echo", pattern="hello", actions=[{"type": "reply", "message": ECHO}])
    add_rule(client, other, name="echo", pattern="hello", actions=[{"type": "reply", "message": ECHO}])
    post_inbound(app, client, shop, text("hello"))
    [run] = runs_of(app, shop.tenant_id)
    with app.app_context():
        from saas.messaging.models import Message

        wamid = db.session.get(Message, run.message_id).wa_message_id
        number = db.session.get(PhoneNumber, other.number.id)
        ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number, number.waba_id)
        # The automated answer arriving at another of our numbers, with the id WhatsApp gave it.
        event = domain_events.message_received(ref, wamid, "15550109999",
                                               wa.inbound("text", {"body": ECHO["text"]["body"]},
                                                          sender="15550109999", message_id=wamid))
        assert engine.handle(db.session.connection(), [event]) == []
        db.session.commit()
        db.session.remove()
    assert runs_of(app, other.tenant_id) == []
