"""Templates: synced from each WABA through every page, created and deleted through Graph, kept current
by Meta's webhooks, bounded to their columns, and scoped to their tenant."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.templates import message_templates as templates, updates as template_updates
from saas.messaging.numbers.graph import GraphError, GraphUnavailable
from saas.messaging.models import Template
from saas.messaging.templates.sync import sync_templates
from saas.tenants.services import tenant_snapshot
from tests.contacts.consent.factories import opt_in
from tests.factories import make_tenant, sender, usage_values
from tests.messaging.live import add_template, live_number, template_payload

CONTACT = "15551230001"


def rows(app, tenant_id=None) -> dict:
    """{(name, language): (status, category, quality, reason, meta_id)} of the tenant's templates (everyone's)."""
    with app.app_context():
        query = select(Template)
        if tenant_id is not None:
            query = query.where(Template.tenant_id == tenant_id)
        result = {(t.name, t.language): (t.status, t.category, t.quality_score, t.reason, t.meta_id)
                  for t in db.session.scalars(query)}
        db.session.remove()
    return result


def sync(app, tenant_id):
    with app.app_context():
        from saas.tenants.models import Tenant

        result = sync_templates(app.extensions["graph"], db.session.get(Tenant, tenant_id))
        db.session.remove()
    return result


@pytest.fixture
def acme(app, graph):
    with app.app_context():
        tenant_id = make_tenant("starter").id
        db.session.remove()
    number = live_number(app, graph, tenant_id)
    return tenant_id, number


# -- sync ------------------------------------------------------------------------------------------

def test_sync_reads_every_page_with_the_numbers_token(app, graph, acme):
    tenant_id, (_, _, waba_id, token) = acme
    for n in range(230):
        graph.add_template(waba_id, f"template_{n:03d}", category=("UTILITY", "MARKETING")[n % 2])
    result = sync(app, tenant_id)
    assert (result.added, result.updated, result.removed) == (230, 0, 0)
    calls = graph.requests("GET", "/message_templates")
    assert len(calls) == 3
    assert [c.query.get("after") for c in calls] == [None, ["100"], ["200"]]
    assert {c.headers["Authorization"] for c in calls} == {f"Bearer {token}"}
    stored = rows(app, tenant_id)
    assert len(stored) == 230
    assert stored[("template_001", "en_US")][:2] == ("APPROVED", "MARKETING")


def test_sync_applies_changes_and_removes_what_meta_no_longer_lists(app, graph, acme):
    tenant_id, (_, _, waba_id, _) = acme
    kept = graph.add_template(waba_id, "order_shipped", category="UTILITY", status="PENDING")
    graph.add_template(waba_id, "old_promo", category="MARKETING")
    assert sync(app, tenant_id).added == 2
    kept.update(status="APPROVED", category="MARKETING", quality_score={"score": "GREEN", "date": 1730000000})
    graph.templates[waba_id] = [t for t in graph.templates[waba_id] if t["name"] != "old_promo"]
    graph.add_template(waba_id, "welcome", language="pt_BR", status="REJECTED")
    graph.templates[waba_id][-1]["rejected_reason"] = "INVALID_FORMAT"
    result = sync(app, tenant_id)
    assert (result.added, result.updated, result.removed) == (1, 1, 1)
    assert rows(app, tenant_id) == {
        ("order_shipped", "en_US"): ("APPROVED", "MARKETING", "GREEN", None, kept["id"]),
        ("welcome", "pt_BR"): ("REJECTED", "UTILITY", None, "INVALID_FORMAT",
                               graph.templates[waba_id][-1]["id"]),
    }
    assert sync(app, tenant_id).added == 0  # idempotent


def test_a_graph_failure_mid_sync_changes_nothing(app, graph, acme):
    tenant_id, (_, _, waba_id, _) = acme
    graph.add_template(waba_id, "first")
    sync(app, tenant_id)
    for n in range(150):
        graph.add_template(waba_id, f"more_{n}")
    graph.templates[waba_id] = graph.templates[waba_id][1:]
    # Every try fails (a GET is retried twice on a 5xx).
    graph.fail("GET", "/message_templates", code=131000, after=1, times=3)
    with pytest.raises(GraphError):
        sync(app, tenant_id)
    assert list(rows(app, tenant_id)) == [("first", "en_US")]


@pytest.mark.parametrize("break_it", ["token", "drop"])
def test_sync_reports_graph_refusals_and_outages(app, graph, acme, break_it):
    tenant_id, (phone_number_id, _, waba_id, _) = acme
    graph.add_template(waba_id, "first")
    if break_it == "token":
        graph.numbers[phone_number_id].token = "revoked"
        with pytest.raises(GraphError) as raised:
            sync(app, tenant_id)
        assert raised.value.code == 190 and not isinstance(raised.value, GraphUnavailable)
    else:
        graph.drop("GET", "/message_templates", times=3)
        with pytest.raises(GraphUnavailable):
            sync(app, tenant_id)
    assert rows(app, tenant_id) == {}


def test_a_paging_link_to_another_host_is_never_followed(app, graph, acme):
    tenant_id, (_, _, waba_id, token) = acme
    for n in range(120):
        graph.add_template(waba_id, f"template_{n:03d}")
    graph.paging_base = "http://127.0.0.2:9"  # not the Graph we were told to call
    assert sync(app, tenant_id).added == 120
    calls = graph.requests("GET", "/message_templates")
    assert [c.query.get("after") for c in calls] == [None, ["100"]]


def test_sync_touches_only_that_tenants_templates(app, graph, acme):
    tenant_id, (_, _, waba_id, _) = acme
    with app.app_context():
        other_id = make_tenant("starter").id
        db.session.remove()
    other_waba = live_number(app, graph, other_id)[2]
    add_template(app, other_id, other_waba, "theirs")
    graph.add_template(waba_id, "ours")
    sync(app, tenant_id)
    assert list(rows(app, other_id)) == [("theirs", "en_US")]
    assert list(rows(app, tenant_id)) == [("ours", "en_US")]


def test_listed_templates_are_bounded_to_their_columns(app, graph, acme):
    tenant_id, (_, _, waba_id, _) = acme
    graph.add_template(waba_id, "fine", components=[{"type": "BODY", "text": "caf\u00e9 \U0001f600"}])
    graph.add_template(waba_id, "too_long_language", language="x" * 40)
    graph.add_template(waba_id, "Not A Valid Name")
    graph.add_template(waba_id, "nul_inside", components=[{"type": "BODY", "text": "a\x00b"}])
    graph.templates[waba_id][-1]["rejected_reason"] = "r\x00" + "x" * 1000
    result = sync(app, tenant_id)
    assert (result.added, result.skipped) == (2, 2)
    stored = rows(app, tenant_id)
    assert set(stored) == {("fine", "en_US"), ("nul_inside", "en_US")}
    assert len(stored[("nul_inside", "en_US")][3]) == 300


def test_the_cli_syncs_one_tenant_or_all(app, graph, runner, acme):
    tenant_id, (_, _, waba_id, _) = acme
    graph.add_template(waba_id, "order_shipped")
    graph.add_template(waba_id, "welcome")
    with app.app_context():
        slug = tenant_snapshot(tenant_id).slug
        db.session.remove()
    result = runner.invoke(args=["templates", "sync", slug])
    assert result.exit_code == 0, result.output
    assert f"{slug}: 2 added, 0 updated, 0 removed." in result.output
    graph.add_template(waba_id, "third")
    result = runner.invoke(args=["templates", "sync"])
    assert result.exit_code == 0 and f"{slug}: 1 added" in result.output
    assert len(rows(app, tenant_id)) == 3


def test_the_cli_says_what_went_wrong(app, graph, runner, acme):
    tenant_id, _ = acme
    assert runner.invoke(args=["templates", "sync", "nobody"]).exit_code != 0
    with app.app_context():
        sandbox_only = make_tenant("starter").slug
        slug = tenant_snapshot(tenant_id).slug
        db.session.remove()
    result = runner.invoke(args=["templates", "sync", sandbox_only])
    assert result.exit_code != 0 and "no live number" in result.output
    graph.fail("GET", "/message_templates", status=503, times=3)
    result = runner.invoke(args=["templates", "sync", slug])
    assert result.exit_code != 0 and "nothing was changed" in result.output


# -- create and delete -----------------------------------------------------------------------------

@pytest.mark.parametrize("fields, bad", [
    ({"name": "Order Shipped"}, "name"),
    ({"name": "x" * 513}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"language": "english please"}, "language"),
    ({"language": "e" * 16}, "language"),
    ({"category": "SERVICE"}, "category"),
    ({"components": []}, "components"),
    ({"components": {"type": "BODY"}}, "components"),
    ({"components": [{"text": "no type"}]}, "components"),
    ({"components": [{"type": "BODY", "text": "x" * 20000}]}, "components"),
    ({"components": [{"type": "BODY", "text": "a\x00b"}]}, "components"),
    ({"components": [{"type": "BODY"}] * 11}, "components"),
    ({"components": [{"type": "BODY", "x": [[[[[[[[["deep"]]]]]]]]]}]}, "components"),
])
def test_an_invalid_template_never_reaches_whatsapp(app, graph, acme, fields, bad):
    tenant_id, (_, _, waba_id, _) = acme
    values = {"name": "order_shipped", "language": "en_US", "category": "UTILITY",
              "components": [{"type": "BODY", "text": "Hello {{1}}"}], **fields}
    with app.app_context():
        with pytest.raises(templates.TemplateInvalid) as raised:
            templates.create_template(app.extensions["graph"], tenant_snapshot(tenant_id), waba_id=waba_id,
                                      actor="test", **values)
        db.session.remove()
    assert set(raised.value.errors) == {bad}
    assert graph.requests("POST", "/message_templates") == []


def test_create_and_delete_go_through_graph(app, graph, acme):
    tenant_id, (_, _, waba_id, token) = acme
    components = [{"type": "BODY", "text": "Your order {{1}} has shipped."}]
    with app.app_context():
        template = templates.create_template(
            app.extensions["graph"], tenant_snapshot(tenant_id), waba_id=waba_id, name="order_shipped",
            language="en_US", category="UTILITY", components=components, actor="test")
        template_id = template.id
        db.session.remove()
    [call] = graph.requests("POST", "/message_templates")
    assert call.body == {"name": "order_shipped", "language": "en_US", "category": "UTILITY",
                         "components": components}
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][:2] == ("PENDING", "UTILITY")
    with app.app_context():
        languages = templates.delete_template(app.extensions["graph"], tenant_snapshot(tenant_id), template_id,
                                              actor="test")
        db.session.remove()
    assert languages == ["en_US"]
    [call] = graph.requests("DELETE", "/message_templates")
    assert call.query == {"name": ["order_shipped"]}
    assert rows(app, tenant_id) == {} and graph.templates[waba_id] == []


# -- webhooks --------------------------------------------------------------------------------------

def status_update(event, *, meta_id=900000000000001, name="order_shipped", language="en_US", **extra):
    return {"event": event, "message_template_id": meta_id, "message_template_name": name,
            "message_template_language": language, "reason": extra.pop("reason", "NONE"), **extra}


def apply(app, waba_id, field, value):
    with app.app_context():
        outcome = template_updates.apply_template_webhook(waba_id, field, value)
        db.session.remove()
    return outcome


@pytest.fixture
def pending(app, acme):
    tenant_id, (_, _, waba_id, _) = acme
    add_template(app, tenant_id, waba_id, "order_shipped", status="PENDING", meta_id="900000000000001")
    return tenant_id, waba_id


@pytest.mark.parametrize("event, reason, status, stored_reason", [
    ("APPROVED", "NONE", "APPROVED", None),
    ("REJECTED", "INVALID_FORMAT", "REJECTED", "INVALID_FORMAT"),
    ("PAUSED", "LOW_QUALITY", "PAUSED", "LOW_QUALITY"),
    ("DISABLED", "LOW_QUALITY", "DISABLED", "LOW_QUALITY"),
    ("REINSTATED", "NONE", "APPROVED", None),
    ("PENDING_DELETION", "NONE", "PENDING_DELETION", None),
])
def test_status_updates_apply(app, pending, event, reason, status, stored_reason):
    tenant_id, waba_id = pending
    value = status_update(event, reason=reason, message_template_category="UTILITY")
    assert apply(app, waba_id, "message_template_status_update", value) == f"status {status}"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][:4] == (status, "UTILITY", None, stored_reason)
    assert apply(app, waba_id, "message_template_status_update", value) == f"status {status}"  # replayed


def test_a_deleted_template_is_removed(app, pending):
    tenant_id, waba_id = pending
    assert apply(app, waba_id, "message_template_status_update", status_update("DELETED")) == "deleted"
    assert rows(app, tenant_id) == {}


def test_events_that_are_not_statuses_change_nothing(app, pending):
    tenant_id, waba_id = pending
    assert apply(app, waba_id, "message_template_status_update",
                 status_update("FLAGGED")) == "event FLAGGED ignored"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][0] == "PENDING"


def test_a_template_is_found_by_name_and_language_when_the_id_is_new(app, pending):
    tenant_id, waba_id = pending
    value = status_update("APPROVED", meta_id=123)
    assert apply(app, waba_id, "message_template_status_update", value) == "status APPROVED"
    assert apply(app, waba_id, "message_template_status_update",
                 status_update("APPROVED", meta_id=124, language="pt_BR")) == "unknown template"
    assert apply(app, "299999999999999", "message_template_status_update",
                 status_update("REJECTED")) == "unknown template"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][0] == "APPROVED"


def test_quality_updates_apply(app, pending):
    tenant_id, waba_id = pending
    value = {"previous_quality_score": "UNKNOWN", "new_quality_score": "YELLOW",
             "message_template_id": 900000000000001, "message_template_name": "order_shipped",
             "message_template_language": "en_US"}
    assert apply(app, waba_id, "message_template_quality_update", value) == "quality YELLOW"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][2] == "YELLOW"


def test_a_completed_category_change_applies_and_an_impending_one_waits(app, pending):
    tenant_id, waba_id = pending
    common = {"message_template_id": 900000000000001, "message_template_name": "order_shipped",
              "message_template_language": "en_US"}
    impending = {**common, "correct_category": "MARKETING", "new_category": "UTILITY",
                 "category_update_timestamp": 1730000000}
    assert apply(app, waba_id, "template_category_update", impending) == "impending category change"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][1] == "UTILITY"
    done = {**common, "previous_category": "UTILITY", "new_category": "MARKETING"}
    assert apply(app, waba_id, "template_category_update", done) == "category MARKETING"
    assert rows(app, tenant_id)[("order_shipped", "en_US")][1] == "MARKETING"


def test_a_category_change_moves_the_next_sends_metering(app, client, live):
    acme = sender(client, "starter")
    phone_number_id, number_pk, waba_id, _ = live_number(app, live, acme.tenant_id)
    live.add_template(waba_id, "order_shipped", category="UTILITY")
    add_template(app, acme.tenant_id, waba_id, "order_shipped", category="UTILITY", meta_id="55")
    opt_in(app, acme.tenant_id, number_pk, CONTACT)  # once it is marketing, a send of it needs the contact's opt-in
    assert acme.send(number=phone_number_id, payload=template_payload(CONTACT, "order_shipped")).status_code == 200
    apply(app, waba_id, "template_category_update", {
        "message_template_id": 55, "message_template_name": "order_shipped", "message_template_language": "en_US",
        "previous_category": "UTILITY", "new_category": "MARKETING"})
    assert acme.send(number=phone_number_id, payload=template_payload(CONTACT, "order_shipped")).status_code == 200
    values = usage_values(app, acme.tenant_id)
    assert (values["conversations.utility"], values["conversations.marketing"]) == (1, 1)


@pytest.mark.parametrize("field, value", [
    ("message_template_status_update", None),
    ("message_template_status_update", ["APPROVED"]),
    ("message_template_status_update", {"event": 7, "message_template_id": 900000000000001}),
    ("message_template_status_update", {"event": "APPROVED", "message_template_id": True}),
    ("message_template_status_update", {"event": "A" * 10_000, "message_template_id": 900000000000001}),
    ("message_template_quality_update", {"new_quality_score": "PURPLE", "message_template_id": 900000000000001}),
    ("template_category_update", {"previous_category": "UTILITY", "new_category": "SERVICE",
                                  "message_template_id": 900000000000001}),
    ("messages", {"event": "APPROVED", "message_template_id": 900000000000001}),
])
def test_malformed_webhooks_change_nothing(app, pending, field, value):
    tenant_id, waba_id = pending
    before = rows(app, tenant_id)
    apply(app, waba_id, field, value)
    assert rows(app, tenant_id) == before


def test_a_long_reason_is_bounded(app, pending):
    tenant_id, waba_id = pending
    apply(app, waba_id, "message_template_status_update", status_update("REJECTED", reason="why\x00" * 200))
    assert len(rows(app, tenant_id)[("order_shipped", "en_US")][3]) == 300
