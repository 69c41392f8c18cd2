"""Portal polish: logged-in users skip /login and /signup, the key form starts empty again, first steps."""
from __future__ import annotations

import re

from tests.conftest import csrf_token

EMAIL = "owner@acme.example.com"
PASSWORD = "correct horse"


def test_a_logged_in_user_is_sent_to_the_dashboard_from_login_and_signup(auth, client):
    auth.signup()
    token = csrf_token(client, "/dashboard")
    for path in ("/login", "/signup"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard"), path
        posted = client.post(path, data={"csrf_token": token, "email": "someone@else.example.com",
                                         "password": "another password", "company": "Other Ltd"})
        assert posted.status_code == 302 and posted.headers["Location"].endswith("/dashboard"), path
    # Posting the signup form while logged in made no second account: logging out, the other email is unknown.
    auth.logout()
    assert auth.login("someone@else.example.com", "another password").status_code == 400
    assert client.get("/login").status_code == 200
    assert client.get("/signup").status_code == 200


def test_the_key_name_field_is_empty_after_a_key_is_created(auth):
    auth.signup()
    response = auth.create_key("Production")
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    name_input = re.search(r'<input[^>]*name="name"[^>]*>', page).group(0)
    assert 'value="Production"' not in name_input
    assert re.search(r'value="[^"]+"', name_input) is None, name_input


def test_a_refused_key_name_is_kept_for_correcting(auth):
    auth.signup()
    response = auth.create_key("x" * 300)
    assert response.status_code == 400
    name_input = re.search(r'<input[^>]*name="name"[^>]*>', response.get_data(as_text=True)).group(0)
    assert 'value="' + "x" * 300 in name_input


def steps(client):
    page = client.get("/dashboard").get_data(as_text=True)
    if 'id="first-steps"' not in page:
        return None
    return {step: re.search(rf'<li id="step-{step}" class="(\w+)"', page).group(1) for step in ("key", "message")}


def test_first_steps_show_what_is_done_and_go_away_once_both_are(app, auth, client):
    auth.signup()
    assert steps(client) == {"key": "todo", "message": "todo"}
    assert "create an API key and send your first message" in client.get("/dashboard").get_data(as_text=True)

    key = re.search(r'id="new-key-secret">([^<]+)<', auth.create_key("First").get_data(as_text=True)).group(1)
    assert steps(client) == {"key": "done", "message": "todo"}

    number = re.search(r'<code class="phone-number-id">(\d+)</code>', client.get("/dashboard").get_data(as_text=True)).group(1)
    sent = client.post(f"/v23.0/{number}/messages", headers={"Authorization": f"Bearer {key}"},
                       json={"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                             "text": {"body": "hi"}})
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert steps(client) is None


def test_a_refused_or_failed_send_does_not_tick_the_first_message(auth, client):
    auth.signup()
    key = re.search(r'id="new-key-secret">([^<]+)<', auth.create_key("First").get_data(as_text=True)).group(1)
    number = re.search(r'<code class="phone-number-id">(\d+)</code>', client.get("/dashboard").get_data(as_text=True)).group(1)
    refused = client.post(f"/v23.0/{number}/messages", headers={"Authorization": f"Bearer {key}"},
                          json={"messaging_product": "whatsapp", "to": "not a number", "type": "text",
                                "text": {"body": "hi"}})
    assert refused.status_code == 400
    assert steps(client) == {"key": "done", "message": "todo"}
    # A send WhatsApp failed (the sandbox's reserved failing recipient) is not a first message either.
    client.post(f"/v23.0/{number}/messages", headers={"Authorization": f"Bearer {key}"},
                json={"messaging_product": "whatsapp", "to": "15550000131", "type": "text", "text": {"body": "hi"}})
    listed = client.get("/api/v1/messages", headers={"Authorization": f"Bearer {key}"}).get_json()["data"]
    assert [m["status"] for m in listed] == ["failed"]
    assert steps(client) == {"key": "done", "message": "todo"}
