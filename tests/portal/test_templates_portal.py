"""The templates page: the plan gate, sync, create and delete against the loopback Graph, Graph's
refusals shown on the form, the sandbox's built-in templates, and tenant isolation."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Template
from tests.conftest import csrf_token
from tests.factories import make_tenant
from tests.messaging.live import add_template, live_number

PASSWORD = "correct horse"


def tenant_user(app, plan: str) -> tuple[int, str]:
    with app.app_context():
        tenant = make_tenant(plan, password=PASSWORD)
        tenant_id, email = tenant.id, tenant.users[0].email
        db.session.remove()
    return tenant_id, email


def names(app, tenant_id) -> set:
    with app.app_context():
        result = set(db.session.scalars(select(Template.name).where(Template.tenant_id == tenant_id)))
        db.session.remove()
    return result


def create_form(client, **fields) -> dict:
    return {"csrf_token": csrf_token(client, "/templates"), "name": "order_shipped", "language": "en_US",
            "category": "UTILITY", "components": json.dumps([{"type": "BODY", "text": "Order {{1}} shipped"}]),
            **fields}


@pytest.fixture
def acme(app, graph, client, auth):
    """A logged-in Starter tenant with a live number: (tenant id, (phone_number_id, pk, waba_id, token))."""
    tenant_id, email = tenant_user(app, "starter")
    number = live_number(app, graph, tenant_id)
    auth.login(email, PASSWORD)
    return tenant_id, number


def test_a_plan_without_templates_sees_why_and_the_upgrade_link(app, graph, client, auth):
    tenant_id, email = tenant_user(app, "free")
    live_number(app, graph, tenant_id)
    auth.login(email, PASSWORD)
    page = client.get("/templates")
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    assert "does not include template messages" in text
    assert 'href="/billing"' in text and 'id="upgrade-link"' in text
    refused = client.post("/templates", data=create_form(client))
    assert refused.status_code == 403
    assert client.post("/templates/sync", data={"csrf_token": csrf_token(client, "/dashboard")}).status_code == 403
    assert graph.calls == []


def test_the_nav_links_the_page(acme, client):
    assert 'href="/templates"' in client.get("/dashboard").get_data(as_text=True)


def test_a_sandbox_tenant_sees_the_built_in_templates(app, client, auth):
    _, email = tenant_user(app, "starter")
    auth.login(email, PASSWORD)
    page = client.get("/templates")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="sandbox-templates"' in text and "hello_world" in text
    assert 'id="no-waba"' in text and 'id="new-template"' not in text


def test_sync_lists_the_wabas_templates(app, acme, client, graph):
    tenant_id, (_, _, waba_id, _) = acme
    graph.add_template(waba_id, "order_shipped", status="APPROVED")
    graph.add_template(waba_id, "spring_sale", category="MARKETING", status="REJECTED")
    response = client.post("/templates/sync", data={"csrf_token": csrf_token(client, "/templates")},
                           follow_redirects=True)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Templates synced from WhatsApp: 2 added, 0 updated, 0 removed." in text
    assert "order_shipped" in text and "spring_sale" in text and "rejected" in text


def test_create_submits_the_template_for_review(app, acme, client, graph):
    tenant_id, (_, _, waba_id, token) = acme
    response = client.post("/templates", data=create_form(client, waba_id=waba_id))
    assert response.status_code == 303
    [call] = graph.requests("POST", "/message_templates")
    assert call.body == {"name": "order_shipped", "language": "en_US", "category": "UTILITY",
                         "components": [{"type": "BODY", "text": "Order {{1}} shipped"}]}
    assert call.headers["Authorization"] == f"Bearer {token}"
    page = client.get("/templates").get_data(as_text=True)
    assert "submitted to WhatsApp" in page and "pending" in page
    assert names(app, tenant_id) == {"order_shipped"}


@pytest.mark.parametrize("fields, message", [
    ({"name": "Order Shipped"}, "lowercase letters, digits and underscores"),
    ({"language": "english"}, "WhatsApp language code"),
    ({"components": "[{not json"}, "not valid JSON"),
    ({"components": "[]"}, "JSON list of components"),
    ({"category": "SERVICE"}, "Not a valid choice"),
])
def test_form_errors_are_shown_next_to_the_field_and_never_reach_whatsapp(acme, client, graph, fields, message):
    waba_id = acme[1][2]
    response = client.post("/templates", data=create_form(client, waba_id=waba_id, **fields))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert graph.requests("POST", "/message_templates") == []


def test_whatsapps_refusal_is_shown_on_the_form(app, acme, client, graph):
    tenant_id, (_, _, waba_id, _) = acme
    graph.add_template(waba_id, "order_shipped")  # Meta already has it (not synced here yet)
    response = client.post("/templates", data=create_form(client, waba_id=waba_id))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert 'id="template-error"' in text and "WhatsApp refused the template" in text
    assert "Message template already exists" in text
    assert names(app, tenant_id) == set()


def test_an_unreachable_graph_is_shown_and_nothing_is_kept(app, acme, client, graph):
    tenant_id, (_, _, waba_id, _) = acme
    graph.drop("POST", "/message_templates")
    response = client.post("/templates", data=create_form(client, waba_id=waba_id))
    assert response.status_code == 502
    assert "could not be reached" in response.get_data(as_text=True)
    assert names(app, tenant_id) == set()


def test_only_the_tenants_own_waba_can_be_chosen(app, acme, client, graph):
    response = client.post("/templates", data=create_form(client, waba_id="299999999999999"))
    assert response.status_code == 400
    assert graph.requests("POST", "/message_templates") == []


def test_delete_removes_it_from_whatsapp_and_here(app, acme, client, graph):
    tenant_id, (_, _, waba_id, _) = acme
    graph.add_template(waba_id, "order_shipped")
    template_id = add_template(app, tenant_id, waba_id, "order_shipped")
    response = client.post(f"/templates/{template_id}/delete",
                           data={"csrf_token": csrf_token(client, "/templates")}, follow_redirects=True)
    assert response.status_code == 200
    assert "Template deleted from WhatsApp (en_US)." in response.get_data(as_text=True)
    [call] = graph.requests("DELETE", "/message_templates")
    assert call.query == {"name": ["order_shipped"]}
    assert names(app, tenant_id) == set() and graph.templates[waba_id] == []


def test_a_refused_delete_is_shown_and_keeps_the_template(app, acme, client, graph):
    tenant_id, (_, _, waba_id, _) = acme
    template_id = add_template(app, tenant_id, waba_id, "order_shipped")  # Meta no longer has it
    response = client.post(f"/templates/{template_id}/delete", data={"csrf_token": csrf_token(client, "/templates")})
    assert response.status_code == 400
    assert "WhatsApp did not delete the template" in response.get_data(as_text=True)
    assert names(app, tenant_id) == {"order_shipped"}


def test_another_tenants_template_is_neither_shown_nor_deleted(app, acme, client, graph):
    other_id, _ = tenant_user(app, "starter")
    other_waba = live_number(app, graph, other_id)[2]
    graph.add_template(other_waba, "their_secret")
    theirs = add_template(app, other_id, other_waba, "their_secret")
    assert "their_secret" not in client.get("/templates").get_data(as_text=True)
    response = client.post(f"/templates/{theirs}/delete", data={"csrf_token": csrf_token(client, "/templates")})
    assert response.status_code == 404
    assert names(app, other_id) == {"their_secret"}
    assert graph.requests("DELETE") == []


def test_posts_need_the_csrf_token(acme, client, graph):
    assert client.post("/templates", data={"name": "x"}).status_code == 400
    assert client.post("/templates/sync").status_code == 400
    assert graph.calls == []


def test_logged_out_visitors_are_sent_to_log_in(client):
    response = client.get("/templates")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
