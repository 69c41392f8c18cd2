"""The automation pages: a rule made, edited and tried on the last 30 days from the portal, business hours
with holidays, form errors next to their fields (never a 500), the plan gate and the role model."""
from __future__ import annotations

from tests.automation.helpers import pro_shop, runs_of
from tests.conftest import csrf_token
from tests.inbox.helpers import add_member, login, make_shop, post_inbound, text

RULE_FORM = {"name": "Prices", "enabled": "y", "priority": "10", "stop_after_match": "y", "trigger": "keyword",
             "match": "contains", "pattern": "price", "reply_kind": "text", "reply_text": "See example.com/prices",
             "language": "en_US", "assign": "", "consent": ""}


def test_a_rule_made_edited_and_replayed_from_the_portal(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    post_inbound(app, client, shop, text("the price?"))  # before the rule: what a replay reads
    login(client, shop.owner_email)
    page = client.get("/automation")
    assert page.status_code == 200 and 'id="new-rule"' in page.get_data(as_text=True)
    token = csrf_token(client, "/automation/rules/new")
    made = client.post("/automation/rules/new", data={**RULE_FORM, "add_label": "lead", "csrf_token": token})
    assert made.status_code == 302, made.get_data(as_text=True)[:2000]
    edit_path = made.headers["Location"]
    shown = client.get(edit_path).get_data(as_text=True)
    assert 'value="Prices"' in shown and "See example.com/prices" in shown and 'value="lead"' in shown
    saved = client.post(edit_path, data={**RULE_FORM, "name": "Price list", "csrf_token": token})
    assert saved.status_code == 302
    assert "Price list" in client.get("/automation").get_data(as_text=True)
    preview = client.post(f"{edit_path}/replay", data={"csrf_token": token})
    body = preview.get_data(as_text=True)
    assert preview.status_code == 200 and 'id="replay-preview"' in body
    assert 'id="replay-matched">1<' in body and 'id="replay-sends">1<' in body and "the price?" in body
    post_inbound(app, client, shop, text("price now"))
    assert [r.rule_name for r in runs_of(app, shop.tenant_id)] == ["Price list"]
    assert client.post(f"{edit_path}/delete", data={"csrf_token": token}).status_code == 302
    assert client.get(edit_path).status_code == 404


def test_bad_rule_input_shows_next_to_its_field(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    login(client, shop.owner_email)
    token = csrf_token(client, "/automation/rules/new")
    for changed, shown in [({"match": "regex", "pattern": "(a+)+$"}, "repeat inside a repeat"),
                           ({"pattern": "x" * 201}, "Field cannot be longer"),
                           ({"reply_text": ""}, "Some fields are missing or invalid"), ({"name": "a\x00b"}, "NUL"),
                           ({"time_from": "25:00", "time_to": "26:00"}, "HH:MM"),
                           ({"add_label": "!!!", "reply_kind": ""}, "label")]:
        response = client.post("/automation/rules/new", data={**RULE_FORM, **changed, "csrf_token": token})
        assert response.status_code == 400, changed
        assert shown in response.get_data(as_text=True), (changed, response.get_data(as_text=True)[-3000:])
    assert runs_of(app, shop.tenant_id) == []
    assert "No rules yet." in client.get("/automation").get_data(as_text=True)


def test_business_hours_with_holidays_from_the_portal(app, client, whatsapp):
    shop = pro_shop(app, whatsapp)
    login(client, shop.owner_email)
    path = f"/automation/hours/{shop.number.id}"
    token = csrf_token(client, path)
    days = {f"open_{d}": "09:00" for d in range(5)} | {f"close_{d}": "17:00" for d in range(5)}
    saved = client.post(path, data={**days, "holidays": "2026-12-25\n2026-12-26", "csrf_token": token})
    assert saved.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert 'value="09:00"' in page and "2026-12-26" in page
    bad = client.post(path, data={**days, "close_0": "08:00", "holidays": "2026-02-30", "csrf_token": token})
    assert bad.status_code == 400 and "weekly.0" in bad.get_data(as_text=True)
    other = pro_shop(app, whatsapp)
    assert client.get(f"/automation/hours/{other.number.id}").status_code == 404


def test_plans_without_automation_see_the_upgrade_link_and_agents_see_nothing(app, client, whatsapp):
    starter = make_shop(app, whatsapp, "starter")
    login(client, starter.owner_email)
    page = client.get("/automation")
    assert page.status_code == 403 and 'id="upgrade-link"' in page.get_data(as_text=True)
    assert client.get("/automation/rules/new").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    shop = pro_shop(app, whatsapp)
    agent = f"agent@t{shop.tenant_id}.example.com"
    add_member(app, shop.tenant_id, agent, "agent")
    login(client, agent)
    assert client.get("/automation").status_code == 403
    assert client.get("/automation/rules/new").status_code == 403
    assert client.get(f"/automation/hours/{shop.number.id}").status_code == 403
    assert ">Automation<" not in client.get("/inbox").get_data(as_text=True)
