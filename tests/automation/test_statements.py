"""What a rule costs per inbound message: the automated-send guard is asked once for a delivered batch, and
what no rule of the tenant reads (whether a message is the contact's first, the contact's labels) is not read."""
from __future__ import annotations

from tests import whatsapp_payloads as wa
from tests.automation.helpers import add_rule, pro_shop, runs_of, sent_to
from tests.factories import settle
from tests.inbox.helpers import SECRET, text
from tests.statements import statements_on

SENDERS = [f"1650555{n:04d}" for n in range(5)]


def post_together(app, client, shop, messages) -> None:
    """One notification holding ``messages`` (each from its own customer): applied and delivered together."""
    payload = wa.notification(shop.waba_id, ("messages", wa.messages_value(
        shop.number, messages=messages, contacts=[wa.contact(sender) for sender in SENDERS])))
    body, headers = wa.signed(payload, SECRET)
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(app)


def test_a_batch_asks_the_guard_once_and_reads_nothing_no_rule_needs(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    with statements_on(app, r"FROM (messages|contact_labels)\b") as seen:
        post_together(app, client, shop, [text("price?", sender=sender) for sender in SENDERS])
    # Which of the messages are automated sends of ours: read by WhatsApp's ids (the send path reads by key).
    guard = [s for s in seen if "messages.idempotency_key \nFROM" in s and "WHERE messages.wa_message_id" in s]
    assert len(guard) == 1
    assert not [s for s in seen if "contact_labels" in s]
    assert not [s for s in seen if s.startswith("SELECT messages.id \nFROM messages")]  # first from the contact?
    assert [r.status for r in runs_of(app, shop.tenant_id)] == ["sent"] * len(SENDERS)
    assert all(len(sent_to(whatsapp, sender)) == 1 for sender in SENDERS)


def test_a_rule_that_asks_for_labels_or_a_first_message_still_gets_them(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="greeting", trigger="first_message", match=None, pattern=None, priority=1)
    add_rule(client, shop, name="vip prices", conditions={"labels": ["vip"]}, priority=2)
    with statements_on(app, r"FROM (messages|contact_labels)\b") as seen:
        post_together(app, client, shop, [text("price?", sender=sender) for sender in SENDERS])
    assert [s for s in seen if "contact_labels" in s] and [s for s in seen if s.startswith("SELECT messages.id")]
    # Everyone writes first (greeted); nobody is labelled vip (no prices).
    assert sorted(r.rule_name for r in runs_of(app, shop.tenant_id)) == ["greeting"] * len(SENDERS)
