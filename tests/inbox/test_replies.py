"""Replies from the page: Meta's refusal shown in the thread, quick-reply buttons and saved replies inside the
window, and inbound media shown through our own endpoint (never Meta's URL)."""
from __future__ import annotations

import hashlib

from tests import whatsapp_payloads as wa
from tests.conftest import csrf_token
from tests.inbox.helpers import entries_of, login, make_shop, post_inbound, text, threads_of


def test_metas_refusal_of_a_reply_is_shown_in_the_thread(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("hi"))
    [thread] = threads_of(app, shop.tenant_id)
    whatsapp.fail("POST", "/messages", code=131026)
    refused = client.post(f"/api/v1/threads/{thread.id}/replies", json={"text": "hello"}, headers=shop.headers)
    assert refused.status_code >= 400 and refused.get_json()["error"]["details"]["whatsapp_code"] == 131026
    [failed] = [e for e in entries_of(app, thread.id) if e.direction == "out"]
    assert (failed.status, failed.error_code, failed.text) == ("failed", 131026, "hello")
    login(client, shop.owner_email)
    page = client.get(f"/inbox/threads/{thread.id}").get_data(as_text=True)
    assert "WhatsApp refused it (131026)" in page
    # From the page, the refused reply is the agent's own, shown with Meta's reason at once.
    whatsapp.fail("POST", "/messages", code=131026)
    token = csrf_token(client, f"/inbox/threads/{thread.id}")
    answer = client.post(f"/inbox/threads/{thread.id}/reply", data={"csrf_token": token, "kind": "text",
                                                                    "text": "from the page"})
    assert answer.status_code >= 400 and 'id="composer-error"' in answer.get_data(as_text=True)
    [from_page] = [e for e in entries_of(app, thread.id) if e.text == "from the page"]
    assert (from_page.author, from_page.status, from_page.error_code) == ("agent", "failed", 131026)


def test_quick_reply_buttons_and_saved_replies_from_the_page(app, client, whatsapp):
    shop = make_shop(app, whatsapp, plan="pro")  # buttons are interactive messages: Pro's
    post_inbound(app, client, shop, text("hi"))
    [thread] = threads_of(app, shop.tenant_id)
    login(client, shop.owner_email)
    token = csrf_token(client, "/inbox")
    assert client.post("/inbox/saved-replies", data={"csrf_token": token, "shortcut": "hours",
                                                     "body": "We open at 9."}).status_code == 303
    page = client.get(f"/inbox/threads/{thread.id}").get_data(as_text=True)
    assert "hours" in page
    saved_id = page.split('<option value="')[2].split('"')[0]  # after the empty choice
    token = csrf_token(client, f"/inbox/threads/{thread.id}")
    sent = client.post(f"/inbox/threads/{thread.id}/reply", data={"csrf_token": token, "kind": "text",
                                                                  "saved_reply": saved_id})
    assert sent.status_code == 303, sent.get_data(as_text=True)[:400]
    assert whatsapp.sends()[-1]["text"]["body"] == "We open at 9."
    buttons = client.post(f"/inbox/threads/{thread.id}/reply", data={
        "csrf_token": token, "kind": "text", "text": "Which one?", "buttons": "Red, Blue"})
    assert buttons.status_code == 303
    body = whatsapp.sends()[-1]
    assert body["type"] == "interactive"
    assert [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]] == ["Red", "Blue"]
    assert [e.author for e in entries_of(app, thread.id) if e.direction == "out"] == ["agent", "agent"]


def test_inbound_media_is_shown_through_our_endpoint(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    data = b"\xff\xd8\xff" + b"jpeg" * 10
    whatsapp.media["1003383421387999"] = {"data": data, "mime_type": "image/jpeg", "owner": shop.number.phone_number_id,
                                          "sha256": hashlib.sha256(data).hexdigest()}
    post_inbound(app, client, shop, wa.inbound("image", {"caption": "The red one", "mime_type": "image/jpeg",
                                                         "sha256": "a" * 44, "id": "1003383421387999"}))
    [thread] = threads_of(app, shop.tenant_id)
    login(client, shop.owner_email)
    page = client.get(f"/inbox/threads/{thread.id}").get_data(as_text=True)
    assert 'src="/inbox/media/1003383421387999"' in page and "The red one" in page
    image = client.get("/inbox/media/1003383421387999")
    assert image.status_code == 200 and image.data == data and image.mimetype == "image/jpeg"
    other = make_shop(app, whatsapp)
    stranger = app.test_client()
    login(stranger, other.owner_email)
    assert stranger.get("/inbox/media/1003383421387999").status_code == 404
