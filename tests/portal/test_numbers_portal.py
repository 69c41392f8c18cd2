"""The portal's Numbers page: connect, test and disconnect live numbers, with CSRF on as in production."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.messaging.models import MODE_LIVE, Message, PhoneNumber
from saas.crypto import decrypt_token
from tests.conftest import csrf_token
from tests.factories import make_key, make_tenant, row_counts

pytestmark = pytest.mark.usefixtures("graph")

PASSWORD = "correct horse"


def text_of(response) -> str:
    return response.get_data(as_text=True)


def field_errors(page: str) -> dict[str, str]:
    return {m.group(1): html.unescape(m.group(2)) for m in
            re.finditer(r'<small class="field-error" id="([a-z_]+)-error">([^<]*)</small>', page)}


def connect_error(page: str) -> str | None:
    match = re.search(r'<div class="notice" role="alert" id="connect-error">([^<]*)</div>', page)
    return html.unescape(match.group(1)) if match else None


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="flash [a-z]+" role="status">([^<]*)</div>', page)]


class Owner:
    """A tenant whose owner is logged in on ``client``."""

    def __init__(self, app, client, plan="starter"):
        with app.app_context():
            tenant = make_tenant(plan)
            self.id, self.email = tenant.id, tenant.users[0].email
            self.key = make_key(tenant)
            db.session.remove()
        self.app, self.client = app, client
        self.login()

    def login(self):
        self.client.post("/logout", data={"csrf_token": csrf_token(self.client, "/login")})
        response = self.client.post("/login", data={"csrf_token": csrf_token(self.client, "/login"),
                                                    "email": self.email, "password": PASSWORD})
        assert response.status_code == 302, text_of(response)

    def connect(self, phone_number_id, token, waba_id="102290129340398"):
        return self.client.post("/numbers", data={
            "csrf_token": csrf_token(self.client, "/numbers"), "phone_number_id": phone_number_id,
            "waba_id": waba_id, "access_token": token})

    def button(self, path):
        return self.client.post(path, data={"csrf_token": csrf_token(self.client, "/numbers")})

    def live_rows(self) -> list[dict]:
        with self.app.app_context():
            rows = [{c.name: getattr(r, c.name) for c in PhoneNumber.__table__.columns} for r in db.session.scalars(
                select(PhoneNumber).where(PhoneNumber.tenant_id == self.id, PhoneNumber.mode == MODE_LIVE))]
            db.session.remove()
        return rows


def writes(app) -> dict:
    counts = row_counts(app)
    with app.app_context():
        counts["audit_events"] = db.session.scalar(select(func.count()).select_from(AuditEvent))
        db.session.remove()
    return counts


@pytest.fixture
def acme(app, client):
    return Owner(app, client, "starter")


@pytest.fixture
def quick_graph(app):
    saved = app.config["WHATSAPP_TIMEOUT_SECONDS"]
    app.config["WHATSAPP_TIMEOUT_SECONDS"] = 0.3
    yield
    app.config["WHATSAPP_TIMEOUT_SECONDS"] = saved


# -- the page ------------------------------------------------------------------------

def test_the_nav_links_the_numbers_page_which_lists_the_sandbox_number(acme):
    dashboard = text_of(acme.client.get("/dashboard"))
    assert '<a href="/numbers">Numbers</a>' in dashboard
    assert 'href="/numbers">Connect a live number</a>' in dashboard
    page = acme.client.get("/numbers")
    assert page.status_code == 200
    assert re.search(r'<code class="phone-number-id">9\d{14}</code>', text_of(page))
    assert "Your Starter plan allows 1 live number;" in text_of(page)


def test_the_numbers_page_needs_a_login(client):
    response = client.get("/numbers")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- connecting -------------------------------------------------------------------------

def test_connecting_shows_the_number_and_only_the_tokens_last_four_characters(acme, graph):
    meta = graph.add_number(display_phone_number="+1 415-555-0123", verified_name="Acme Shoes",
                            quality_rating="GREEN", messaging_limit_tier="TIER_1K")

    response = acme.connect(meta.phone_number_id, meta.token, waba_id=meta.waba_id)

    assert response.status_code == 303 and response.headers["Location"].endswith("/numbers")
    page = text_of(acme.client.get("/numbers"))
    assert "+1 415-555-0123 (Acme Shoes) is connected." in flashes(page)
    assert f'<code class="phone-number-id">{meta.phone_number_id}</code>' in page
    assert f'<code class="token-hint">…{meta.token[-4:]}</code>' in page
    assert '<td class="quality" data-label="Quality">GREEN</td>' in page and '<td class="tier" data-label="Messaging limit">TIER_1K</td>' in page
    assert meta.token not in page and meta.token[:-4] not in page
    [stored] = acme.live_rows()
    assert stored["access_token_encrypted"] != meta.token
    with acme.app.app_context():
        assert decrypt_token(stored["access_token_encrypted"]) == meta.token


@pytest.mark.parametrize("case, field, meta_says", [
    ("wrong token", "access_token", "Error validating access token"),
    ("unknown number", "phone_number_id", "does not exist"),
    ("permission 10", "access_token", "(#10) Permission denied"),
    ("permission 200", "access_token", "(#200) Permissions error"),
])
def test_a_graph_error_is_a_form_error_with_metas_message(app, acme, graph, case, field, meta_says):
    meta = graph.add_number()
    phone_number_id, token = meta.phone_number_id, meta.token
    if case == "wrong token":
        token = "EAAGwrongtoken1234"
    elif case == "unknown number":
        phone_number_id = "199999999999999"
    else:
        graph.fail("GET", f"/{phone_number_id}", code=int(case.split()[-1]))
    before = writes(app)

    response = acme.connect(phone_number_id, token)

    assert response.status_code == 400
    errors = field_errors(text_of(response))
    assert meta_says in errors[field]
    assert writes(app) == before
    # The token typed is never sent back to the browser.
    assert token not in text_of(response)


def test_graph_timing_out_is_a_form_error_not_a_500(app, acme, graph, quick_graph):
    meta = graph.add_number()
    graph.delay("GET", f"/{meta.phone_number_id}", seconds=1.0)
    before = writes(app)

    response = acme.connect(meta.phone_number_id, meta.token)

    assert response.status_code == 400
    assert "did not answer within 0.3 seconds" in connect_error(text_of(response))
    assert writes(app) == before


@pytest.mark.parametrize("phone_number_id, waba_id, token, field, says", [
    ("1065403\x0052242922", "102290129340398", "EAAGtoken", "phone_number_id", "digits only"),
    ("1" * 65, "102290129340398", "EAAGtoken", "phone_number_id", "at most 64 digits"),
    ("10654035224292a", "102290129340398", "EAAGtoken", "phone_number_id", "digits only"),
    ("１０６５４０３５２２４２９２２", "102290129340398", "EAAGtoken", "phone_number_id", "digits only"),
    ("", "102290129340398", "EAAGtoken", "phone_number_id", "Enter the phone number ID."),
    ("106540352242922", "１０２２９０", "EAAGtoken", "waba_id", "digits only"),
    ("106540352242922", "1022\x0090", "EAAGtoken", "waba_id", "digits only"),
    ("106540352242922", "102290129340398", "EAAG\x00token", "access_token", "printable ASCII"),
    ("106540352242922", "102290129340398", "EAAG token", "access_token", "printable ASCII"),
    ("106540352242922", "102290129340398", "ЕААГtoken", "access_token", "printable ASCII"),
    ("106540352242922", "102290129340398", "E" * 1025, "access_token", "at most 1024 characters"),
])
def test_malformed_input_is_a_field_error_and_graph_is_not_asked(app, acme, graph, phone_number_id, waba_id, token,
                                                                 field, says):
    before = writes(app)
    response = acme.connect(phone_number_id, token, waba_id=waba_id)
    assert response.status_code == 400
    assert says in field_errors(text_of(response))[field]
    assert graph.calls == []
    assert writes(app) == before


def test_surrounding_spaces_from_a_paste_are_ignored(acme, graph):
    meta = graph.add_number()
    response = acme.connect(f"  {meta.phone_number_id} ", f"{meta.token}\n", waba_id=f" {meta.waba_id}")
    assert response.status_code == 303
    [stored] = acme.live_rows()
    assert (stored["phone_number_id"], stored["waba_id"]) == (meta.phone_number_id, meta.waba_id)


def test_a_request_without_the_csrf_token_connects_nothing(app, acme, graph):
    meta = graph.add_number()
    response = acme.client.post("/numbers", data={"phone_number_id": meta.phone_number_id, "waba_id": "1",
                                                  "access_token": meta.token})
    assert response.status_code == 400
    assert graph.calls == [] and acme.live_rows() == []


def test_the_free_plan_is_told_live_numbers_need_a_paid_plan(app, client, graph):
    free = Owner(app, client, "free")
    page = text_of(client.get("/numbers"))
    assert "Live numbers need a paid plan" in page
    meta = graph.add_number()

    response = free.connect(meta.phone_number_id, meta.token)

    assert response.status_code == 400
    assert "Live numbers need a paid plan" in connect_error(text_of(response))
    assert graph.calls == [] and free.live_rows() == []


def test_the_plans_allowance_is_enforced_on_the_page(acme, graph):
    first, second = graph.add_number(), graph.add_number()
    assert acme.connect(first.phone_number_id, first.token).status_code == 303
    assert "1 connected" in text_of(acme.client.get("/numbers"))

    response = acme.connect(second.phone_number_id, second.token)

    assert response.status_code == 400
    assert "Starter plan allows 1 live number and 1 is connected" in connect_error(text_of(response))
    assert len(acme.live_rows()) == 1


def test_another_tenants_number_is_refused(app, client, graph):
    meta = graph.add_number()
    owner = Owner(app, client, "starter")
    assert owner.connect(meta.phone_number_id, meta.token).status_code == 303
    other = Owner(app, client, "pro")

    response = other.connect(meta.phone_number_id, meta.token)

    assert response.status_code == 400
    assert "registered to another account" in field_errors(text_of(response))["phone_number_id"]
    assert other.live_rows() == [] and len(owner.live_rows()) == 1


# -- testing a connection -----------------------------------------------------------------

def test_test_connection_reads_quality_and_tier_and_shows_them(acme, graph):
    meta = graph.add_number(quality_rating="GREEN", messaging_limit_tier="TIER_1K")
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    meta.quality_rating, meta.messaging_limit_tier = "RED", "TIER_250"

    response = acme.button(f"/numbers/{stored['id']}/test")

    assert response.status_code == 303
    page = text_of(acme.client.get("/numbers"))
    assert any("quality RED, messaging limit TIER_250" in f for f in flashes(page))
    assert '<td class="quality" data-label="Quality">RED</td>' in page and '<td class="tier" data-label="Messaging limit">TIER_250</td>' in page
    [stored] = acme.live_rows()
    assert (stored["quality_rating"], stored["messaging_limit_tier"]) == ("RED", "TIER_250")


def test_a_failing_test_shows_metas_message(acme, graph):
    meta = graph.add_number()
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    graph.fail("GET", f"/{meta.phone_number_id}", code=10)

    acme.button(f"/numbers/{stored['id']}/test")

    page = text_of(acme.client.get("/numbers"))
    assert any(f.startswith(f"Testing {stored['display_number']} failed: WhatsApp refused (code 10)")
               for f in flashes(page))
    assert "(#10) Permission denied" in page


def test_test_connection_needs_the_csrf_token(acme, graph):
    meta = graph.add_number()
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    calls = len(graph.calls)
    assert acme.client.post(f"/numbers/{stored['id']}/test").status_code == 400
    assert len(graph.calls) == calls


# -- disconnecting ---------------------------------------------------------------------------

def test_disconnect_asks_first_then_stops_the_number_and_keeps_its_messages(app, acme, graph):
    meta = graph.add_number(display_phone_number="+1 415-555-0123")
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    with app.app_context():
        db.session.add(Message(tenant_id=acme.id, phone_number_id=stored["id"], direction="out",
                               wa_id="15551234567", type="text", body_summary="Your order shipped",
                               status="read", wa_message_id="wamid.HBgLportaltest"))
        db.session.commit()
        db.session.remove()
    numbers_page = text_of(acme.client.get("/numbers"))
    assert f'href="/numbers/{stored["id"]}/disconnect"' in numbers_page

    confirm = acme.client.get(f"/numbers/{stored['id']}/disconnect")
    assert confirm.status_code == 200
    assert "Disconnect +1 415-555-0123?" in text_of(confirm)
    assert acme.live_rows()[0]["disconnected_at"] is None  # asking changed nothing

    response = acme.client.post(f"/numbers/{stored['id']}/disconnect",
                                data={"csrf_token": csrf_token(acme.client, f"/numbers/{stored['id']}/disconnect")})

    assert response.status_code == 303
    page = text_of(acme.client.get("/numbers"))
    assert any("is disconnected" in f for f in flashes(page))
    assert '<span class="badge bad">disconnected</span>' in page
    assert f'/numbers/{stored["id"]}/test' not in page
    send = acme.client.post(f"/v23.0/{meta.phone_number_id}/messages", headers={"Authorization": f"Bearer {acme.key}"},
                            json={"messaging_product": "whatsapp", "to": "15551234567", "type": "text",
                                  "text": {"body": "hi"}})
    assert send.status_code == 404
    assert "Your order shipped" in text_of(acme.client.get("/dashboard"))


def test_disconnect_needs_the_csrf_token(acme, graph):
    meta = graph.add_number()
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    assert acme.client.post(f"/numbers/{stored['id']}/disconnect").status_code == 400
    assert acme.live_rows()[0]["disconnected_at"] is None


def test_a_disconnected_number_is_connected_again_from_the_page(acme, graph):
    meta = graph.add_number()
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    acme.button(f"/numbers/{stored['id']}/disconnect")
    meta.token = "EAAGnewtoken5678"

    response = acme.connect(meta.phone_number_id, meta.token)

    assert response.status_code == 303
    assert any("is connected again" in f for f in flashes(text_of(acme.client.get("/numbers"))))
    [again] = acme.live_rows()
    assert again["id"] == stored["id"] and again["disconnected_at"] is None and again["token_last4"] == "5678"


# -- tenant isolation -----------------------------------------------------------------------

def test_another_tenant_gets_404_for_every_action_on_the_number(app, client, graph):
    meta = graph.add_number()
    owner = Owner(app, client, "starter")
    owner.connect(meta.phone_number_id, meta.token)
    [stored] = owner.live_rows()
    intruder = Owner(app, client, "pro")
    calls = len(graph.calls)
    before = writes(app)

    assert intruder.button(f"/numbers/{stored['id']}/test").status_code == 404
    assert intruder.client.get(f"/numbers/{stored['id']}/disconnect").status_code == 404
    assert intruder.button(f"/numbers/{stored['id']}/disconnect").status_code == 404

    assert len(graph.calls) == calls and writes(app) == before
    assert owner.live_rows()[0]["disconnected_at"] is None
    assert meta.phone_number_id not in text_of(intruder.client.get("/numbers"))


@pytest.mark.parametrize("number_id", ["0", "abc", "99999999999999999999", "-1"])
def test_ids_that_name_no_number_are_404(acme, number_id):
    assert acme.button(f"/numbers/{number_id}/test").status_code == 404
    assert acme.client.get(f"/numbers/{number_id}/disconnect").status_code == 404


def test_the_sandbox_number_cannot_be_tested_or_disconnected(app, acme):
    with app.app_context():
        sandbox = db.session.scalar(select(PhoneNumber.id).where(PhoneNumber.tenant_id == acme.id))
        db.session.remove()
    assert acme.button(f"/numbers/{sandbox}/test").status_code == 404
    assert acme.button(f"/numbers/{sandbox}/disconnect").status_code == 404


# -- the audit log -----------------------------------------------------------------------

def test_portal_actions_are_audited_as_the_logged_in_user(app, acme, graph):
    meta = graph.add_number()
    acme.connect(meta.phone_number_id, meta.token)
    [stored] = acme.live_rows()
    acme.button(f"/numbers/{stored['id']}/test")
    acme.button(f"/numbers/{stored['id']}/disconnect")
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == acme.id,
                                                                  AuditEvent.action.like("number.%"))
                                         .order_by(AuditEvent.id)))
        assert [(e.action, e.actor) for e in events] == [
            ("number.connected", acme.email), ("number.tested", acme.email), ("number.disconnected", acme.email)]
        db.session.remove()
