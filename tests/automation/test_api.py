"""/api/v1/automation: rules made, read, changed and deleted; business hours and settings; every bad input
answered with the error envelope; another tenant's rules and numbers are not found; the plan gate."""
from __future__ import annotations

import pytest

from tests.automation.helpers import add_rule, pro_shop
from tests.inbox.helpers import make_shop

REPLY = [{"type": "reply", "message": {"type": "text", "text": {"body": "hi"}}}]


def test_rules_are_made_read_changed_listed_in_order_and_deleted(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    late = add_rule(client, shop, name="late", priority=50, conditions={
        "numbers": [shop.number.id], "labels": ["VIP"], "weekdays": [0, 4], "from": "09:00", "to": "17:30"})
    early = add_rule(client, shop, name="early", priority=5, trigger="first_message")
    assert late["conditions"] == {"numbers": [shop.number.id], "labels": ["vip"], "weekdays": [0, 4],
                                  "from": "09:00", "to": "17:30"}
    assert early["match"] is None and early["pattern"] is None
    listed = client.get("/api/v1/automation/rules", headers=shop.headers).get_json()["data"]
    assert [r["name"] for r in listed] == ["early", "late"]
    changed = client.patch(f"/api/v1/automation/rules/{late['id']}", json={"enabled": False, "priority": 1},
                           headers=shop.headers)
    assert changed.status_code == 200 and changed.get_json()["enabled"] is False
    assert changed.get_json()["pattern"] == "price"  # what the change did not name stays
    assert client.get(f"/api/v1/automation/rules/{late['id']}", headers=shop.headers).get_json()["priority"] == 1
    assert client.delete(f"/api/v1/automation/rules/{late['id']}", headers=shop.headers).status_code == 204
    assert client.get(f"/api/v1/automation/rules/{late['id']}", headers=shop.headers).status_code == 404


def test_another_tenants_rules_and_numbers_are_not_found(app, client, whatsapp):
    shop, other = pro_shop(app, whatsapp), pro_shop(app, whatsapp)
    rule = add_rule(client, shop)
    for method, path in [("get", f"/api/v1/automation/rules/{rule['id']}"),
                         ("patch", f"/api/v1/automation/rules/{rule['id']}"),
                         ("delete", f"/api/v1/automation/rules/{rule['id']}"),
                         ("post", f"/api/v1/automation/rules/{rule['id']}/replay"),
                         ("get", f"/api/v1/automation/hours/{shop.number.id}"),
                         ("put", f"/api/v1/automation/hours/{shop.number.id}")]:
        response = getattr(client, method)(path, json={"name": "x"}, headers=other.headers)
        assert response.status_code == 404, (method, path)
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/automation/rules", headers=other.headers).get_json()["data"] == []
    stolen = client.post("/api/v1/automation/rules", headers=other.headers, json={
        "name": "x", "trigger": "first_message", "actions": REPLY, "conditions": {"numbers": [shop.number.id]}})
    assert stolen.status_code == 400 and "conditions.numbers" in stolen.get_json()["error"]["details"]
    assert client.get(f"/api/v1/automation/rules/{rule['id']}", headers=shop.headers).status_code == 200


def test_a_plan_without_automation_is_refused_with_the_upgrade_link(app, client, whatsapp):
    shop = make_shop(app, whatsapp, "starter")
    for method, path in [("get", "/api/v1/automation/rules"), ("post", "/api/v1/automation/rules"),
                         ("get", "/api/v1/automation/settings"), ("get", f"/api/v1/automation/hours/{shop.number.id}")]:
        response = getattr(client, method)(path, json={}, headers=shop.headers)
        assert response.status_code == 403
        error = response.get_json()["error"]
        assert error["code"] == "feature_not_in_plan" and error["upgrade_url"]


@pytest.mark.parametrize("body,field", [
    ({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"name": "a\x00b"}, "name"),
    ({"trigger": "sometimes"}, "trigger"), ({"match": "fuzzy"}, "match"), ({"pattern": "p" * 201}, "pattern"),
    ({"pattern": "nul\x00"}, "pattern"), ({"match": "regex", "pattern": "(a+)+$"}, "pattern"),
    ({"match": "regex", "pattern": "(unclosed"}, "pattern"), ({"priority": -1}, "priority"),
    ({"priority": True}, "priority"), ({"enabled": "yes"}, "enabled"), ({"actions": []}, "actions"),
    ({"actions": REPLY * 2}, "actions"), ({"actions": [{"type": "launch"}]}, "actions"),
    ({"actions": [{"type": "add_label", "label": "x" * 51}]}, "actions.label"),
    ({"actions": [{"type": "forward", "event": "Has Spaces"}]}, "actions.event"),
    ({"actions": [{"type": "assign", "user_id": 2**40}]}, "actions.user_id"),
    ({"actions": [{"type": "reply", "message": {"type": "text", "text": {"body": "x" * 5000}}}]}, "actions.message"),
    ({"actions": [{"type": "reply", "message": {"type": "template", "template": {
        "name": "nope", "language": {"code": "en_US"}}}}]}, "actions.message.template"),
    ({"conditions": {"weekdays": [7]}}, "conditions.weekdays"), ({"conditions": {"from": "25:00", "to": "26:00"}},
                                                                 "conditions.from"),
    ({"conditions": {"colour": "red"}}, "conditions"), ({"conditions": {"labels": ["a\x00"]}}, "conditions.labels"),
])
def test_bad_rules_are_refused_with_the_field_named(app, client, whatsapp, body, field):
    shop = pro_shop(app, whatsapp)
    fields = {"name": "rule", "trigger": "keyword", "match": "contains", "pattern": "price", "actions": REPLY,
              **body}
    response = client.post("/api/v1/automation/rules", json=fields, headers=shop.headers)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    # NUL is refused in any JSON body before a view reads it (its message names no field).
    assert error["code"] == "invalid_request" and (field in error.get("details", {}) or "\\x00" in repr(body)), error
    assert client.get("/api/v1/automation/rules", headers=shop.headers).get_json()["data"] == []


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"{" * 5000])
def test_bodies_that_are_no_json_object_get_the_envelope(app, client, whatsapp, raw):
    shop = pro_shop(app, whatsapp)
    response = client.post("/api/v1/automation/rules", data=raw, headers={**shop.headers,
                                                                         "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_request"


def test_business_hours_and_settings(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    path = f"/api/v1/automation/hours/{shop.number.id}"
    assert client.get(path, headers=shop.headers).get_json() == {"number_id": shop.number.id, "weekly": {},
                                                                 "holidays": [], "set": False}
    week = {"0": [["09:00", "12:00"], ["13:00", "17:00"]], "5": [["10:00", "14:00"]]}
    saved = client.put(path, json={"weekly": week, "holidays": ["2026-12-25", "2026-12-24", "2026-12-25"]},
                       headers=shop.headers).get_json()
    assert saved == {"number_id": shop.number.id, "weekly": week, "holidays": ["2026-12-24", "2026-12-25"],
                     "set": True}
    for bad in [{"weekly": {"0": [["17:00", "09:00"]]}}, {"holidays": ["2026-13-01"]}, {"weekly": []},
                {"holidays": ["x\x00"]}, {"holidays": ["2026-01-01"] * 101}]:
        response = client.put(path, json=bad, headers=shop.headers)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_request", bad
    assert client.get(path, headers=shop.headers).get_json()["weekly"] == week
    assert client.get("/api/v1/automation/hours/999999999", headers=shop.headers).status_code == 404
    assert client.get("/api/v1/automation/hours/abc", headers=shop.headers).status_code == 404
    assert client.delete(path, headers=shop.headers).status_code == 204
    assert client.get(path, headers=shop.headers).get_json()["set"] is False
    for bad in [{"timezone": "Mars/Olympus"}, {"timezone": "x" * 65}, {"timezone": "Europe/Ber\x00lin"},
                {"replies_per_hour": 0}, {"replies_per_hour": 101}, {"replies_per_hour": "3"}]:
        response = client.patch("/api/v1/automation/settings", json=bad, headers=shop.headers)
        assert response.status_code == 400, bad
    assert client.patch("/api/v1/automation/settings", json={"timezone": "Europe/Berlin"},
                        headers=shop.headers).get_json() == {"timezone": "Europe/Berlin", "replies_per_hour": 3}
