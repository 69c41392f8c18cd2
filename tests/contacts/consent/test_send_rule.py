"""A marketing template goes only to a contact who opted in to the sending number's marketing, never after an
opt-out, on every path (the Cloud-compatible send, /api/v1, send_many, the CLI), refused before anything is
written, sent or metered; other templates and free text are never checked; a plan may leave consent to its
tenants (then only an opt-out refuses)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import event, func, select

from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.outbound import send_service
from saas.tenants.services import tenant_snapshot
from tests import whatsapp_payloads as wa
from tests.admin.test_plans import admin  # noqa: F401  (the fixture: a platform admin logged in)
from tests.contacts.consent.conftest import states, webhook_number
from tests.contacts.consent.factories import consent_managed_by_tenant, opt_in, opt_out
from tests.factories import sender, usage_values
from tests.messaging.live import add_template, live_number_with, template_payload, text_payload
from tests.webhooks.test_whatsapp_inbound import deliver

MARKETING, UTILITY, AUTHENTICATION = "seasonal_promotion", "order_update", "verification_code"
ADA, BEN, CEM = "15551230001", "15551230002", "15551230003"


def messages(app, tenant_id) -> int:
    """The tenant's outbound messages written."""
    with app.app_context():
        found = db.session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == tenant_id, Message.direction == "out"))
        db.session.remove()
    return found


@pytest.fixture
def acme(client):
    return sender(client, "pro")


@pytest.fixture
def promo(app, graph, acme):
    """acme's live number with a MARKETING template "promo" (and the utility "order_shipped"), ADA's window open."""
    number = live_number_with(app, graph, acme.tenant_id, contacts=(ADA,), templates=("order_shipped",))
    graph.add_template(number[2], "promo", category="MARKETING")
    add_template(app, acme.tenant_id, number[2], "promo", category="MARKETING")
    return number


def test_marketing_without_an_opt_in_is_refused_before_anything_is_written_sent_or_metered(app, graph, acme, promo):
    response = acme.send(number=promo[0], payload=template_payload(ADA, "promo"))

    assert response.status_code == 403
    error = response.get_json()["error"]
    assert (error["code"], error["reason"], error["type"]) == (4033, "consent_required", "OAuthException")
    assert "POST /api/v1/contacts/{id}/consent" in error["message"]
    assert error["details"] == {"contact": ADA, "contact_id": None, "state": None}
    assert graph.sends() == []
    assert messages(app, acme.tenant_id) == 0
    assert usage_values(app, acme.tenant_id) == {}


def test_the_v1_api_refuses_in_its_envelope_with_the_way_to_record_an_opt_in(app, acme):
    response = acme.client.post("/api/v1/messages", headers=acme.headers, json=template_payload(ADA, MARKETING))
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "consent_required"
    assert "Record the opt-in first" in error["message"] and "opted_in" in error["message"]
    assert usage_values(app, acme.tenant_id) == {} and messages(app, acme.tenant_id) == 0


def test_an_opt_in_lets_marketing_through_from_that_number_only(app, graph, acme, promo):
    opt_in(app, acme.tenant_id, promo[1], ADA)
    assert acme.send(number=promo[0], payload=template_payload(ADA, "promo")).status_code == 200
    # The same contact, from the tenant's sandbox number: no opt-in there.
    refused = acme.send(payload=template_payload(ADA, MARKETING))
    assert refused.status_code == 403 and refused.get_json()["error"]["reason"] == "consent_required"
    assert len(graph.sends()) == 1
    assert usage_values(app, acme.tenant_id) == {"messages": 1, "conversations": 1, "conversations.marketing": 1}


def test_after_an_opt_out_marketing_is_refused_as_opted_out(app, graph, acme, promo):
    [contact_id] = opt_in(app, acme.tenant_id, promo[1], ADA)
    opt_out(app, acme.tenant_id, promo[1], ADA)
    response = acme.send(number=promo[0], payload=template_payload(ADA, "promo"))
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert (error["code"], error["reason"]) == (4034, "opted_out")
    assert error["details"] == {"contact": ADA, "contact_id": contact_id, "state": "opted_out"}
    assert graph.sends() == [] and usage_values(app, acme.tenant_id) == {}


def test_utility_and_authentication_templates_and_free_text_are_never_checked(app, graph, acme, promo):
    opt_out(app, acme.tenant_id, promo[1], ADA)
    with count_consent_reads(app) as reads:
        assert acme.send(number=promo[0], payload=template_payload(ADA, "order_shipped")).status_code == 200
        assert acme.send(number=promo[0], to=ADA, body="Your parcel left").status_code == 200
        for name in (UTILITY, AUTHENTICATION):  # the sandbox's, to a contact with no record at all
            assert acme.send(payload=template_payload(BEN, name)).status_code == 200
    assert reads == []
    assert len(graph.sends()) == 2


class count_consent_reads:
    """The statements that read consent while the block runs (on the app's engine)."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.seen: list[str] = []

    def _listen(self, conn, cursor, statement, *args):
        if "consents" in statement:
            self.seen.append(statement)

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._listen)
        return self.seen

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._listen)


def test_one_indexed_read_per_marketing_send_and_one_per_batch(app, acme):
    opt_in(app, acme.tenant_id, acme.number, ADA, BEN, CEM)
    with count_consent_reads(app) as reads:
        assert acme.send(payload=template_payload(ADA, MARKETING)).status_code == 200
    assert len(reads) == 1
    tenant = snapshot(app, acme.tenant_id)
    with count_consent_reads(app) as reads:
        results = send_service(app).send_many(tenant, acme.number, [
            template_payload(to, MARKETING) for to in (ADA, BEN, CEM, "15551230004")] + [text_payload(ADA)])
    assert len(reads) == 1
    assert [r.accepted for r in results] == [True, True, True, False, True]


def snapshot(app, tenant_id):
    with app.app_context():
        tenant = tenant_snapshot(tenant_id)
        db.session.remove()
    return tenant


def test_send_many_refuses_only_the_recipients_without_consent_and_usage_is_exact(app, acme):
    opt_in(app, acme.tenant_id, acme.number, ADA, CEM)
    opt_out(app, acme.tenant_id, acme.number, CEM)
    results = send_service(app).send_many(snapshot(app, acme.tenant_id), acme.number, [
        template_payload(ADA, MARKETING), template_payload(BEN, MARKETING), template_payload(CEM, MARKETING),
        template_payload(BEN, UTILITY), template_payload(ADA, MARKETING)])

    assert [r.accepted for r in results] == [True, False, False, True, True]
    assert [r.error.code for r in results if not r.accepted] == ["consent_required", "opted_out"]
    # Two marketing messages to ADA in one window and a utility one to BEN: exactly what went out is billed.
    assert usage_values(app, acme.tenant_id) == {"messages": 3, "conversations": 2, "conversations.marketing": 1,
                                                 "conversations.utility": 1}
    assert messages(app, acme.tenant_id) == 3


def test_the_command_refuses_marketing_without_an_opt_in_line_by_line(app, runner, acme, tmp_path):
    opt_in(app, acme.tenant_id, acme.number, ADA)
    path = tmp_path / "promo.jsonl"
    path.write_text("\n".join(json.dumps(template_payload(to, MARKETING)) for to in (ADA, BEN)) + "\n")
    result = runner.invoke(args=["sends", "batch", "--tenant", acme.tenant_slug, "--from", acme.number, str(path)])
    assert result.exit_code == 1, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p.get("error", {}).get("code") for p in printed] == [None, "consent_required"]
    assert usage_values(app, acme.tenant_id)["messages"] == 1


def test_a_plan_that_leaves_consent_to_the_tenant_needs_no_opt_in_but_an_opt_out_still_refuses(app, acme):
    consent_managed_by_tenant(app, "pro")
    assert acme.send(payload=template_payload(ADA, MARKETING)).status_code == 200
    opt_out(app, acme.tenant_id, acme.number, BEN)
    refused = acme.send(payload=template_payload(BEN, MARKETING))
    assert refused.status_code == 403 and refused.get_json()["error"]["reason"] == "opted_out"
    results = send_service(app).send_many(snapshot(app, acme.tenant_id), acme.number, [
        template_payload(CEM, MARKETING), template_payload(BEN, MARKETING)])
    assert [r.accepted for r in results] == [True, False]
    assert results[1].error.code == "opted_out"
    assert usage_values(app, acme.tenant_id)["messages"] == 2


def test_an_opt_out_arriving_between_two_sends_refuses_the_second(app, client, graph, whatsapp, acme, promo):
    opt_in(app, acme.tenant_id, promo[1], ADA)
    number = webhook_number(app, promo[1])
    assert acme.send(number=promo[0], payload=template_payload(ADA, "promo")).status_code == 200

    deliver(app, client, wa.notification(promo[2], ("messages", wa.messages_value(
        number, contacts=[wa.contact(ADA)], messages=[wa.inbound("text", {"body": " Stop "}, sender=ADA)]))))

    refused = acme.send(number=promo[0], payload=template_payload(ADA, "promo"))
    assert refused.status_code == 403 and refused.get_json()["error"]["reason"] == "opted_out"
    assert len(graph.sends()) == 1
    assert states(app, acme.tenant_id) == {(ADA, promo[1]): ("opted_out", "keyword")}


def test_one_tenants_consent_is_nothing_to_another(app, client, acme):
    other = sender(client, "pro")
    opt_in(app, acme.tenant_id, acme.number, ADA)
    opt_out(app, other.tenant_id, other.number, BEN)
    opt_in(app, acme.tenant_id, acme.number, BEN)
    # acme's opt-in of ADA does not cover other's sends, and other's opt-out of BEN does not stop acme's.
    assert other.send(payload=template_payload(ADA, MARKETING)).get_json()["error"]["reason"] == "consent_required"
    assert acme.send(payload=template_payload(BEN, MARKETING)).status_code == 200
    assert usage_values(app, other.tenant_id) == {}


def test_the_admins_plan_setting_leaves_consent_to_the_plans_tenants(app, admin, acme):
    assert acme.send(payload=template_payload(ADA, MARKETING)).status_code == 403
    page = admin.client.get("/admin/plans/pro/edit").get_data(as_text=True)
    assert 'id="consent_managed_by_tenant"' in page

    assert admin.edit("pro", consent_managed_by_tenant="y").status_code == 302
    assert acme.send(payload=template_payload(ADA, MARKETING)).status_code == 200
    assert admin.edit("pro").status_code == 302  # unticked again
    assert acme.send(payload=template_payload(BEN, MARKETING)).get_json()["error"]["reason"] == "consent_required"


def test_other_tenants_contacts_with_the_same_wa_id_never_mask_an_opt_out(app, client):
    consent_managed_by_tenant(app, "pro")
    # The same people are contacts of tenants made before ours and after it, whichever order rows come in.
    before, acme, after = sender(client, "pro"), sender(client, "pro"), sender(client, "pro")
    opt_in(app, before.tenant_id, before.number, BEN, CEM)
    opt_out(app, acme.tenant_id, acme.number, BEN, CEM)
    opt_in(app, after.tenant_id, after.number, BEN, CEM)
    refused = acme.send(payload=template_payload(BEN, MARKETING))
    assert refused.status_code == 403 and refused.get_json()["error"]["reason"] == "opted_out"
    results = send_service(app).send_many(snapshot(app, acme.tenant_id), acme.number,
                                          [template_payload(CEM, MARKETING), template_payload(ADA, MARKETING)])
    assert [r.accepted for r in results] == [False, True]
