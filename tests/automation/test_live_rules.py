"""Rules on live inbound messages: the reply leaves through the send service once, written in the thread by
"automation"; each trigger; priority and stop-after-match; a disabled rule does nothing."""
from __future__ import annotations

from tests import whatsapp_payloads as wa
from tests.automation.helpers import add_rule, pro_shop, runs_of, sent_to, thread_entries
from tests.inbox.helpers import CUSTOMER, post_inbound, text


def test_a_keyword_reply_leaves_once_and_shows_in_the_thread(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    message = text("What is the PRICE of this?")
    post_inbound(app, client, shop, message)
    post_inbound(app, client, shop, message)  # WhatsApp repeats the webhook: nothing more is sent
    [reply] = sent_to(whatsapp, CUSTOMER)
    assert reply["type"] == "text" and reply["text"]["body"] == "Prices: example.com"
    [run] = runs_of(app, shop.tenant_id)
    assert run.status == "sent" and run.message_id is not None
    entries = thread_entries(app, shop.tenant_id)
    assert [(e.kind, e.author) for e in entries if e.direction == "out"] == [("message", "automation")]
    [logged] = [e for e in entries if e.kind == "rule_run"]
    assert logged.author == "automation" and "prices" in logged.text and "reply queued" in logged.text


def test_exact_and_regex_keywords(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="exact", match="exact", pattern="Hours", priority=1)
    add_rule(client, shop, name="order", match="regex", pattern=r"order\s*#?\d{4,8}", priority=2)
    post_inbound(app, client, shop, text("opening hours?"))      # not exactly "hours"
    assert sent_to(whatsapp, CUSTOMER) == []
    post_inbound(app, client, shop, text("  hours "))
    post_inbound(app, client, shop, text("where is order #123456"))
    assert [r.rule_name for r in runs_of(app, shop.tenant_id)] == ["exact", "order"]
    assert len(sent_to(whatsapp, CUSTOMER)) == 2


def test_first_message_greets_once(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="greeting", trigger="first_message", match=None, pattern=None,
             actions=[{"type": "reply", "message": {"type": "text", "text": {"body": "Welcome {name}!"}}}])
    post_inbound(app, client, shop, text("hi"))
    post_inbound(app, client, shop, text("hi again"))
    [greeting] = sent_to(whatsapp, CUSTOMER)
    assert greeting["text"]["body"] == "Welcome Sheena Nelson!"


def test_button_and_list_reply_payloads(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="unsubscribe", trigger="button", match=None, pattern="Unsubscribe",
             actions=[{"type": "opt_out"}, {"type": "add_label", "label": "unsubscribed"}])
    add_rule(client, shop, name="express", trigger="button", match=None, pattern="priority_express",
             actions=[{"type": "reply", "message": {"type": "text", "text": {"body": "Express it is."}}}])
    post_inbound(app, client, shop, wa.inbound("button", {"payload": "Unsubscribe", "text": "Unsubscribe"}))
    post_inbound(app, client, shop, wa.inbound("interactive", {"type": "list_reply", "list_reply": {
        "id": "priority_express", "title": "Express"}}))
    post_inbound(app, client, shop, wa.inbound("button", {"payload": "Other", "text": "Unsubscribe"}))
    assert [r.rule_name for r in runs_of(app, shop.tenant_id)] == ["unsubscribe", "express"]
    contact = client.get("/api/v1/contacts", headers=shop.headers).get_json()["data"][0]
    assert "unsubscribed" in contact["labels"]
    assert [m["text"]["body"] for m in sent_to(whatsapp, CUSTOMER)] == ["Express it is."]


def test_priority_and_stop_after_match(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="second", priority=20, stop_after_match=False,
             actions=[{"type": "add_label", "label": "asked-price"}])
    add_rule(client, shop, name="first", priority=10, stop_after_match=False,
             actions=[{"type": "add_label", "label": "lead"}])
    add_rule(client, shop, name="last", priority=30, stop_after_match=True)
    add_rule(client, shop, name="never", priority=40)
    add_rule(client, shop, name="disabled", priority=0, enabled=False)
    post_inbound(app, client, shop, text("price?"))
    assert [r.rule_name for r in runs_of(app, shop.tenant_id)] == ["first", "second", "last"]
    assert len(sent_to(whatsapp, CUSTOMER)) == 1


def test_conditions_on_number_and_label(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="vip", conditions={"labels": ["vip"]})
    post_inbound(app, client, shop, text("price?"))
    assert runs_of(app, shop.tenant_id) == []
    contact = client.get("/api/v1/contacts", headers=shop.headers).get_json()["data"][0]
    assert client.patch(f"/api/v1/contacts/{contact['id']}", json={"labels": ["vip"]},
                        headers=shop.headers).status_code == 200
    post_inbound(app, client, shop, text("price now?"))
    assert [r.rule_name for r in runs_of(app, shop.tenant_id)] == ["vip"]


def test_an_event_delivered_again_runs_nothing_again(app, client, whatsapp):
    from saas.automation import engine, sending
    from saas.extensions import db
    from saas.messaging import domain_events
    from saas.messaging.domain_events import NumberRef
    from saas.messaging.models import PhoneNumber

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    post_inbound(app, client, shop, text("price?", message_id="wamid.again-1"))
    with app.app_context():
        number = db.session.get(PhoneNumber, shop.number.id)
        ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number, number.waba_id)
        event = domain_events.message_received(ref, "wamid.again-1", CUSTOMER,
                                               text("price?", message_id="wamid.again-1"))
        # The outbox hands the event over again (at least once): no second run, no second line in the thread.
        assert engine.handle(db.session.connection(), [event]) == []
        db.session.commit()
        assert sending.sweep() == 0
        db.session.remove()
    assert len(runs_of(app, shop.tenant_id)) == 1 and len(sent_to(whatsapp, CUSTOMER)) == 1
    assert len([e for e in thread_entries(app, shop.tenant_id) if e.kind == "rule_run"]) == 1


def test_the_consumer_needs_no_app_context_and_the_sweep_sends_what_it_queued(app, client, whatsapp):
    from saas.automation import engine, sending
    from saas.extensions import db
    from saas.messaging import domain_events
    from saas.messaging.domain_events import NumberRef
    from saas.messaging.models import PhoneNumber, WebhookDelivery, WebhookEndpoint

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices", actions=[
        {"type": "reply", "message": {"type": "text", "text": {"body": "Prices: example.com"}}},
        {"type": "add_label", "label": "lead"}, {"type": "forward", "event": "asked.price"}])
    post_inbound(app, client, shop, text("hello", message_id="wamid.bare-1"))  # stored, matches nothing
    with app.app_context():
        db.session.add(WebhookEndpoint(tenant_id=shop.tenant_id, url="https://hooks.example.com/in",
                                       signing_secret_encrypted="x", secret_hint="x", active=True))
        db.session.commit()
        number = db.session.get(PhoneNumber, shop.number.id)
        ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number, number.waba_id)
        bind = db.engine
        db.session.remove()
    # A background deliverer: a connection of its own, no request, no app context.
    event = domain_events.message_received(ref, "wamid.bare-2", CUSTOMER, text("price?", message_id="wamid.bare-2"))
    with bind.begin() as conn:
        due = engine.handle(conn, [event])
    assert len(due) == 1 and sent_to(whatsapp, CUSTOMER) == []
    with app.app_context():
        assert sending.sweep() == 1
        assert db.session.query(WebhookDelivery).filter_by(event_type="automation.asked.price").count() == 1
        db.session.remove()
    assert [m["text"]["body"] for m in sent_to(whatsapp, CUSTOMER)] == ["Prices: example.com"]
    assert client.get("/api/v1/contacts", headers=shop.headers).get_json()["data"][0]["labels"] == ["lead"]


def test_with_events_delivered_by_the_deliverer_thread_the_reply_still_leaves(app, client, whatsapp):
    from saas import events
    from saas.extensions import db
    from saas.messaging import domain_events
    from saas.messaging.domain_events import NumberRef
    from saas.messaging.models import PhoneNumber
    from tests.factories import settle

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    post_inbound(app, client, shop, text("hello"))  # the customer's window open, nothing matched
    app.config["EVENTS_IN_BACKGROUND"] = True
    deliverer = app.extensions.setdefault("event_deliverer", events.Deliverer(app))
    try:
        # A request publishes the message: its commit hands the stream to the deliverer thread and returns.
        with app.test_request_context():
            number = db.session.get(PhoneNumber, shop.number.id)
            ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number,
                            number.waba_id)
            events.publish(db.session.connection(), [domain_events.message_received(
                ref, "wamid.deliverer-1", CUSTOMER, text("price?", message_id="wamid.deliverer-1"))])
            assert events.commit(db.session) == 0
            db.session.remove()
        assert deliverer.join(10)  # delivered in the deliverer's transaction
        settle(app)  # the reply its commit handed to the background queue
        assert deliverer.join(10)  # the send's own event, handed to the deliverer too
    finally:
        app.config["EVENTS_IN_BACKGROUND"] = False
    assert [m["text"]["body"] for m in sent_to(whatsapp, CUSTOMER)] == ["Prices: example.com"]
    assert [r.status for r in runs_of(app, shop.tenant_id)] == ["sent"]
    [out] = [e for e in thread_entries(app, shop.tenant_id) if e.direction == "out"]
    assert (out.author, out.status, out.text) == ("automation", "accepted", "Prices: example.com")


def test_a_free_form_reply_outside_the_window_is_refused_by_the_send_service_and_shown(app, client, whatsapp):
    from saas.automation import engine, sending
    from saas.extensions import db
    from saas.messaging import domain_events
    from saas.messaging.domain_events import NumberRef
    from saas.messaging.models import PhoneNumber
    from tests.factories import usage_values

    shop = pro_shop(app, whatsapp)
    add_rule(client, shop, name="prices")
    before = usage_values(app, shop.tenant_id)
    with app.app_context():
        number = db.session.get(PhoneNumber, shop.number.id)
        ref = NumberRef(number.id, number.tenant_id, number.phone_number_id, number.display_number, number.waba_id)
        # An event whose message opened no window (none was stored): WhatsApp would refuse free text.
        event = domain_events.message_received(ref, "wamid.no-window", CUSTOMER, text("price?"))
        due = engine.handle(db.session.connection(), [event])
        db.session.commit()
        assert sending.send_runs(due) == 0
        db.session.remove()
    [run] = runs_of(app, shop.tenant_id)
    assert run.status == "failed" and sent_to(whatsapp, CUSTOMER) == []
    assert usage_values(app, shop.tenant_id) == before
    assert any(e.kind == "rule_run" and "reply not sent" in e.text for e in thread_entries(app, shop.tenant_id))
