"""Threads from domain events: order by WhatsApp's clock whatever the arrival order, ticks never backwards,
authors, message kinds, unread counts, search, and nothing for a plan without the inbox."""
from __future__ import annotations

from tests import whatsapp_payloads as wa
from tests.inbox.helpers import CUSTOMER, entries_of, make_shop, post_inbound, post_statuses, text, threads_of


def test_messages_read_in_whatsapp_order_whatever_order_they_arrive_in(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("second", offset=-60))
    post_inbound(app, client, shop, text("first", offset=-120))
    post_inbound(app, client, shop, text("second", offset=-60, message_id=None))  # another wamid, same words
    [thread] = threads_of(app, shop.tenant_id)
    reply = client.post(f"/api/v1/threads/{thread.id}/replies", json={"type": "text", "text": "an answer"},
                        headers=shop.headers)
    assert reply.status_code == 201, reply.get_json()
    post_inbound(app, client, shop, text("late but earliest", offset=-600))
    shown = client.get(f"/api/v1/threads/{thread.id}", headers=shop.headers).get_json()["messages"]
    assert [m["text"] for m in shown] == ["late but earliest", "first", "second", "second", "an answer"]
    assert [m["direction"] for m in shown] == ["in", "in", "in", "in", "out"]
    [thread] = threads_of(app, shop.tenant_id)
    assert thread.unread == 4  # no agent has read the thread yet (an API reply reads nothing)
    assert thread.name == "Sheena Nelson" and thread.contact_id is not None


def test_an_event_handed_over_again_changes_nothing(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    message = text("hello")
    post_inbound(app, client, shop, message)
    post_inbound(app, client, shop, message)  # WhatsApp repeats a webhook
    [thread] = threads_of(app, shop.tenant_id)
    assert [e.text for e in entries_of(app, thread.id)] == ["hello"]
    assert thread.unread == 1


def test_ticks_move_forward_only_and_meta_refusals_show(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("hi"))
    [thread] = threads_of(app, shop.tenant_id)
    sent = client.post(f"/api/v1/threads/{thread.id}/replies", json={"type": "text", "text": "one"},
                       headers=shop.headers).get_json()
    wamid = sent["wa_message_id"]
    assert sent["author"] == "api" and sent["status"] == "accepted"
    post_statuses(app, client, shop, wa.status(wamid, "read", recipient=CUSTOMER))
    post_statuses(app, client, shop, wa.status(wamid, "delivered", recipient=CUSTOMER))
    [entry] = [e for e in entries_of(app, thread.id) if e.wa_message_id == wamid]
    assert entry.status == "read"
    other = client.post(f"/api/v1/threads/{thread.id}/replies", json={"type": "text", "text": "two"},
                        headers=shop.headers).get_json()
    post_statuses(app, client, shop, wa.failed(other["wa_message_id"], recipient=CUSTOMER))
    [failed] = [e for e in entries_of(app, thread.id) if e.wa_message_id == other["wa_message_id"]]
    assert (failed.status, failed.error_code, failed.error_title) == ("failed", 131026, "Message undeliverable")


def test_every_kind_is_kept_for_the_page(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, *[message for message, _ in wa.EVERY_TYPE if message.get("from") == CUSTOMER])
    [thread] = threads_of(app, shop.tenant_id)
    by_type = {e.type: e for e in entries_of(app, thread.id)}
    assert by_type["order"].content["total"] == 85 and len(by_type["order"].content["items"]) == 2
    assert by_type["location"].content["name"] == "Philz Coffee"
    assert by_type["image"].content["media_id"] == "1003383421387256"
    assert by_type["contacts"].content["contacts"][0]["name"] == "Barbara J. Johnson"
    assert by_type["reaction"].content["emoji"] == "\U0001F44D"
    page = client.get(f"/inbox/threads/{thread.id}")  # not logged in: the page needs a login
    assert page.status_code in (302, 401)


def test_api_sends_outside_the_inbox_land_in_the_thread(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("hi"))
    response = client.post(f"/v23.0/{shop.number.phone_number_id}/messages", headers=shop.headers, json={
        "messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "from the API"}})
    assert response.status_code == 200, response.get_json()
    [thread] = threads_of(app, shop.tenant_id)
    out = [e for e in entries_of(app, thread.id) if e.direction == "out"]
    assert [(e.author, e.text) for e in out] == [("api", "from the API")]


def test_a_plan_without_the_inbox_gets_no_threads_and_a_403(app, client, whatsapp):
    shop = make_shop(app, whatsapp, plan="free")
    post_inbound(app, client, shop, text("hi"))
    assert threads_of(app, shop.tenant_id) == []
    response = client.get("/api/v1/threads", headers=shop.headers)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "feature_not_in_plan"


def test_the_queue_puts_the_soonest_closing_window_first_then_the_longest_wait(app, client, whatsapp):
    import time

    shop = make_shop(app, whatsapp)
    now = int(time.time())
    # (customer, when they last wrote): 20 h ago (4 h left), 2 h ago (22 h left), 30 h ago (closed), 26 h ago.
    for sender, ago in (("16505550001", 20), ("16505550002", 2), ("16505550003", 30), ("16505550004", 26)):
        post_inbound(app, client, shop, wa.inbound("text", {"body": "hi"}, sender=sender,
                                                    timestamp=str(now - ago * 3600)), sender=sender, name=sender)
    from tests.inbox.helpers import login

    login(client, shop.owner_email)
    page = client.get("/inbox").get_data(as_text=True)
    order = [sender for sender in ("16505550001", "16505550002", "16505550003", "16505550004") if sender in page]
    assert sorted(order, key=page.index) == ["16505550001", "16505550002", "16505550003", "16505550004"]
    assert "3h 59m left" in page or "4h 0m left" in page
    assert page.count("window closed") == 2


def test_an_orders_notification_lands_in_the_thread_as_the_orders_and_answers_nobody(app, client, whatsapp):
    from tests.messaging.live import add_template

    shop = make_shop(app, whatsapp, "pro")
    whatsapp.add_template(shop.waba_id, "order_update")
    add_template(app, shop.tenant_id, shop.waba_id, "order_update")
    mapped = client.put("/api/v1/order-notifications/created", headers=shop.headers,
                        json={"phone_number_id": shop.number.phone_number_id,
                              "template": {"name": "order_update", "language": "en_US"},
                              "variables": {"body.1": {"field": "reference"}}})
    assert mapped.status_code == 200, mapped.get_json()
    post_inbound(app, client, shop, text("where is my order?"))
    event = client.post("/api/v1/orders/1001/events", headers=shop.headers,
                        json={"event": "created", "phone": f"+{CUSTOMER}"})
    assert event.status_code == 201 and event.get_json()["notification"]["status"] == "sent", event.get_json()
    [thread] = threads_of(app, shop.tenant_id)
    messages = [(e.direction, e.author) for e in entries_of(app, thread.id) if e.kind == "message"]
    assert messages == [("in", "customer"), ("out", "order")]
    assert thread.waiting_since is not None  # the customer's question is still waiting for an answer


def test_a_new_customers_thread_is_made_with_its_contact_inside_a_savepoint(app, whatsapp):
    # The outbox delivers a failed batch's events again one at a time, each in a savepoint of its own: the
    # contact made for a new customer there must outlive the contact's own session.
    from saas.contacts.models import Contact
    from saas.extensions import db
    from saas.inbox import threads

    shop = make_shop(app, whatsapp)
    with app.app_context():
        conn = db.session.connection()
        with conn.begin_nested():
            thread = threads.thread_for(conn, shop.tenant_id, shop.number.id, "16505550101", name="New Customer")
        contact = db.session.get(Contact, thread.contact_id)
        assert contact is not None and contact.wa_id == "16505550101"
        db.session.commit()
        db.session.remove()
