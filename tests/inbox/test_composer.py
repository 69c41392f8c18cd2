"""The composer follows WhatsApp's rules: free text past the 24-hour window is refused at the API (409
window_closed) and in the page, a template goes; another tenant's thread is 404; inputs are bounded."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from saas.extensions import db
from saas.messaging.models import ServiceWindow
from saas.timeutil import utcnow
from tests.conftest import csrf_token
from tests.inbox.helpers import login, make_shop, post_inbound, text, threads_of
from tests.messaging.live import add_template


def close_window(app, tenant_id: int) -> None:
    with app.app_context():
        db.session.execute(update(ServiceWindow).where(ServiceWindow.tenant_id == tenant_id)
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        db.session.remove()


def test_free_text_past_the_window_is_refused_at_the_api_and_a_template_goes(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("hi"))
    [thread] = threads_of(app, shop.tenant_id)
    close_window(app, shop.tenant_id)
    sends_before = len(whatsapp.sends())
    refused = client.post(f"/api/v1/threads/{thread.id}/replies", json={"type": "text", "text": "too late"},
                          headers=shop.headers)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "window_closed"
    assert len(whatsapp.sends()) == sends_before
    whatsapp.add_template(shop.waba_id, "order_update")
    add_template(app, shop.tenant_id, shop.waba_id, "order_update")
    missing = client.post(f"/api/v1/threads/{thread.id}/replies", headers=shop.headers,
                          json={"type": "template", "template": {"name": "order_update", "language": "en_US"}})
    assert missing.status_code == 400 and "template.variables" in missing.get_json()["error"]["details"]
    sent = client.post(f"/api/v1/threads/{thread.id}/replies", headers=shop.headers, json={
        "type": "template", "template": {"name": "order_update", "language": "en_US", "variables": ["Sheena"]}})
    assert sent.status_code == 201, sent.get_json()
    assert sent.get_json()["type"] == "template"
    body = whatsapp.sends()[-1]
    assert body["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Sheena"}]


def test_the_page_offers_templates_only_and_refuses_free_text_past_the_window(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("hi"))
    [thread] = threads_of(app, shop.tenant_id)
    login(client, shop.owner_email)
    page = client.get(f"/inbox/threads/{thread.id}").get_data(as_text=True)
    assert 'id="composer-text"' in page and "window open" in page
    close_window(app, shop.tenant_id)
    page = client.get(f"/inbox/threads/{thread.id}").get_data(as_text=True)
    assert 'id="composer-text"' not in page and 'id="window-closed-note"' in page
    token = csrf_token(client, f"/inbox/threads/{thread.id}")
    forced = client.post(f"/inbox/threads/{thread.id}/reply", data={"csrf_token": token, "kind": "text",
                                                                     "text": "typed anyway"})
    assert forced.status_code == 409
    assert 'data-code="window_closed"' in forced.get_data(as_text=True)


def test_another_tenants_thread_is_not_found_and_inputs_are_bounded(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    other = make_shop(app, whatsapp)
    post_inbound(app, client, shop, text("hi"))
    [thread] = threads_of(app, shop.tenant_id)
    for method, path, body in (("get", "", None), ("post", "/resolve", None), ("post", "/replies", {"text": "x"}),
                               ("post", "/notes", {"body": "x"}), ("post", "/assign", {"assignee_id": None})):
        response = getattr(client, method)(f"/api/v1/threads/{thread.id}{path}", json=body, headers=other.headers)
        assert response.status_code == 404, (path, response.get_json())
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/threads", headers=other.headers).get_json()["data"] == []
    for body in ({"text": "x" * 5000}, {"text": "a\x00b"}, {"type": "sticker"}, {"type": "image", "media": {}}):
        response = client.post(f"/api/v1/threads/{thread.id}/replies", json=body, headers=shop.headers)
        assert response.status_code == 400, (body, response.get_json())
    assert client.get("/api/v1/threads?limit=0", headers=shop.headers).status_code == 400
    assert client.get("/api/v1/threads?q=" + "x" * 101, headers=shop.headers).status_code == 400
    assert client.post(f"/api/v1/threads/{thread.id}/notes", json={"body": ""}, headers=shop.headers).status_code == 400
    # Ids past a column's range are unknown, never a database error (PostgreSQL refuses them in a comparison).
    assert client.get("/api/v1/threads?assignee=99999999999", headers=shop.headers).status_code == 400
    huge = client.post(f"/api/v1/threads/{thread.id}/assign", json={"assignee_id": 2**40}, headers=shop.headers)
    assert huge.status_code == 404 and huge.get_json()["error"]["code"] == "not_found"
    login(client, shop.owner_email)
    token = csrf_token(client, f"/inbox/threads/{thread.id}")
    assert client.post(f"/inbox/threads/{thread.id}/reply", data={
        "csrf_token": token, "kind": "text", "saved_reply": "１２"}).status_code == 404
    assert client.post(f"/inbox/threads/{thread.id}/assign", data={
        "csrf_token": token, "assignee_id": "99999999999"}).status_code == 404


def test_the_api_lists_with_a_cursor_and_searches_by_name_or_number(app, client, whatsapp):
    shop = make_shop(app, whatsapp)
    for n in range(3):
        post_inbound(app, client, shop, text("hi", sender=f"1650555000{n}"), name=f"Customer {n}",
                     sender=f"1650555000{n}")
    first = client.get("/api/v1/threads?limit=2", headers=shop.headers).get_json()
    assert len(first["data"]) == 2 and first["has_more"]
    rest = client.get(f"/api/v1/threads?limit=2&cursor={first['next_cursor']}", headers=shop.headers).get_json()
    assert len(rest["data"]) == 1 and not rest["has_more"]
    assert [t["name"] for t in client.get("/api/v1/threads?q=customer 1", headers=shop.headers).get_json()["data"]] \
        == ["Customer 1"]
    assert [t["wa_id"] for t in client.get("/api/v1/threads?q=5550002", headers=shop.headers).get_json()["data"]] \
        == ["16505550002"]
    thread_id = first["data"][0]["id"]
    assert client.post(f"/api/v1/threads/{thread_id}/resolve", headers=shop.headers).get_json()["status"] == "resolved"
    assert client.post(f"/api/v1/threads/{thread_id}/reopen", headers=shop.headers).get_json()["status"] == "open"
    note = client.post(f"/api/v1/threads/{thread_id}/notes", json={"body": "VIP"}, headers=shop.headers)
    assert note.status_code == 201 and note.get_json()["kind"] == "note"
