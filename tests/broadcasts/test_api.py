"""/api/v1/broadcasts: create with the check, steer, read outcomes; the plan's gates; another tenant's
broadcast is not found."""
from __future__ import annotations

import csv
import io

from saas.billing.catalog import plan_by_code
from saas.extensions import db
from tests.broadcasts.helpers import Shop, run
from tests.factories import make_key


def api(app, shop):
    with app.app_context():
        from saas.tenants.services import tenant_snapshot

        key = make_key(tenant_snapshot(shop.tenant_id))
        db.session.remove()
    return {"Authorization": f"Bearer {key}"}


def body(shop, **extra):
    return {"name": "Spring sale", "phone_number_id": shop.phone_number_id,
            "template": {"name": "promo", "language": "en_US"},
            "variables": {"body.1": {"field": "name", "default": "there"}, "body.2": {"value": "SPRING"}},
            "audience": {"labels": ["vip"]}, **extra}


def test_create_answers_the_check_then_start_sends_and_recipients_page(app, client, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(5)
    headers = api(app, shop)
    created = client.post("/api/v1/broadcasts", json=body(shop), headers=headers)
    assert created.status_code == 201, created.get_json()
    broadcast = created.get_json()
    assert broadcast["status"] == "draft"
    assert broadcast["check"]["recipients"] == 5
    assert len(broadcast["check"]["samples"]) == 3
    assert broadcast["check"]["samples"][0]["variables"] == {"body.1": "Customer 0", "body.2": "SPRING"}
    started = client.post(f"/api/v1/broadcasts/{broadcast['id']}/start", headers=headers)
    assert started.get_json()["status"] == "running"
    run(app)
    done = client.get(f"/api/v1/broadcasts/{broadcast['id']}", headers=headers).get_json()
    assert done["status"] == "completed" and done["counts"]["sent"] == 5
    first = client.get(f"/api/v1/broadcasts/{broadcast['id']}/recipients?limit=2&status=sent", headers=headers)
    page = first.get_json()
    assert len(page["data"]) == 2 and page["has_more"]
    second = client.get(page["next"], headers=headers).get_json()
    assert [r["id"] for r in second["data"]][0] > page["data"][-1]["id"]
    listed = client.get("/api/v1/broadcasts", headers=headers).get_json()
    assert listed["data"][0]["counts"]["sent"] == 5


def test_pause_resume_cancel_and_a_step_that_does_not_fit_is_409(app, client, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3)
    headers = api(app, shop)
    broadcast_id = client.post("/api/v1/broadcasts", json=body(shop), headers=headers).get_json()["id"]
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/pause", headers=headers).status_code == 409
    client.post(f"/api/v1/broadcasts/{broadcast_id}/start", headers=headers)
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/pause", headers=headers).get_json()["status"] == "paused"
    run(app)
    assert graph.sends() == []
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/resume", headers=headers).get_json()["status"] == "running"
    cancelled = client.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=headers)
    assert cancelled.get_json()["status"] == "cancelled"
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/start", headers=headers).get_json()["error"]["code"] \
        == "broadcast_state"


def test_bad_input_is_a_400_with_details(app, client, graph):
    shop = Shop(app, graph)
    shop.template()
    headers = api(app, shop)
    for bad, field in [({"audience": {}}, "audience"), ({"variables": {"body.1": {"field": "nope"}}}, "variables.body.1"),
                       ({"template": {"name": "missing", "language": "en_US"}}, "template"),
                       ({"schedule": {"at": "2020-01-01T09:00", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
                       ({"name": "x" * 201}, "name"), ({"messages_per_second": 5000}, "messages_per_second"),
                       ({"audience": {"labels": ["x" * 51]}}, "audience.labels")]:
        answer = client.post("/api/v1/broadcasts", json=body(shop, **bad), headers=headers)
        assert answer.status_code == 400, (bad, answer.get_json())
        assert field in answer.get_json()["error"]["details"], (bad, answer.get_json())
    assert client.get("/api/v1/broadcasts/1/recipients?status=nope", headers=headers).status_code == 400


def test_another_tenants_broadcast_is_not_found(app, client, graph):
    shop, other = Shop(app, graph), Shop(app, graph)
    shop.template()
    shop.contacts(1)
    broadcast_id = client.post("/api/v1/broadcasts", json=body(shop), headers=api(app, shop)).get_json()["id"]
    theirs = api(app, other)
    for path in ("", "/recipients"):
        assert client.get(f"/api/v1/broadcasts/{broadcast_id}{path}", headers=theirs).status_code == 404
    for verb in ("start", "pause", "resume", "cancel", "check"):
        assert client.post(f"/api/v1/broadcasts/{broadcast_id}/{verb}", headers=theirs).status_code == 404
    assert client.get("/api/v1/broadcasts", headers=theirs).get_json()["data"] == []


def test_without_the_broadcast_feature_every_call_is_refused_with_the_upgrade_link(app, client, graph):
    shop = Shop(app, graph, plan="starter")
    shop.template()
    headers = api(app, shop)
    answer = client.post("/api/v1/broadcasts", json=body(shop), headers=headers)
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "feature_not_in_plan"
    assert answer.get_json()["error"]["upgrade_url"]
    assert client.get("/api/v1/broadcasts", headers=headers).status_code == 403


def test_csv_export_needs_analytics_export(app, client, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(2)
    headers = api(app, shop)
    broadcast_id = client.post("/api/v1/broadcasts", json=body(shop), headers=headers).get_json()["id"]
    client.post(f"/api/v1/broadcasts/{broadcast_id}/start", headers=headers)
    run(app)
    exported = client.get(f"/api/v1/broadcasts/{broadcast_id}/recipients?format=csv", headers=headers)
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [r["status"] for r in rows] == ["sent", "sent"]
    with app.app_context():
        plan = plan_by_code("pro")
        plan.features = [f for f in plan.features if f != "analytics_export"]
        db.session.commit()
        db.session.remove()
    from saas import cache

    cache.clear_all()
    refused = client.get(f"/api/v1/broadcasts/{broadcast_id}/recipients?format=csv", headers=headers)
    assert refused.status_code == 403 and refused.get_json()["error"]["upgrade_url"]
