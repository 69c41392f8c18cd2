"""The check's rules: every reason a contact is dropped, counted, and what starting then sends."""
from __future__ import annotations

from saas.billing.catalog import plan_by_code
from saas.extensions import db
from tests.broadcasts.helpers import Shop, run, sends_to


def set_plan(app, code="pro", **values):
    with app.app_context():
        plan = plan_by_code(code)
        for name, value in values.items():
            setattr(plan, name, value)
        db.session.commit()
        db.session.remove()
    from saas import cache

    cache.clear_all()


def test_limits_drop_the_last_of_the_audience_and_the_rest_is_exactly_what_is_sent(app, graph):
    set_plan(app, max_broadcast_recipients=8)
    shop = Shop(app, graph, tier="TIER_1K")
    shop.template()
    shop.contacts(10)
    shop.contacts(2, start=50, attributes=lambda i: {})               # no code: variable with no default
    shop.contacts(1, start=60, prefix="9053", digits=3)               # not a valid number
    broadcast_id = shop.create()
    check = shop.get(broadcast_id)["check"]
    reasons = check["dropped"]["by_reason"]
    assert (check["audience"], check["recipients"]) == (13, 8)
    assert (reasons["missing_variable"], reasons["invalid_number"], reasons["plan_recipient_limit"]) == (2, 1, 2)
    assert check["estimate"]["units"] == 8 and check["estimate"]["by_country"]["TR"]["recipients"] == 8
    shop.call("start", broadcast_id)
    run(app)
    assert len(sends_to(graph)) == 8


def test_the_messaging_limit_and_a_hard_cap_drop_what_they_would_refuse(app, graph):
    set_plan(app, overage_cents=None, included_conversations=3)
    shop = Shop(app, graph, tier="TIER_1K")
    shop.template()
    shop.contacts(5)
    check = shop.get(shop.create())["check"]
    assert check["recipients"] == 3 and check["dropped"]["by_reason"]["quota"] == 2
    set_plan(app, overage_cents=4, included_conversations=5000)
    limited = Shop(app, graph, tier="TIER_2")
    limited.template()
    limited.contacts(5)
    check = limited.get(limited.create())["check"]
    assert check["recipients"] == 2 and check["dropped"]["by_reason"]["messaging_limit"] == 3


def test_a_tenant_who_manages_consent_sends_marketing_without_our_opt_ins_but_never_to_opt_outs(app, graph):
    set_plan(app, consent_managed_by_tenant=True)
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3, consent=None)
    shop.contacts(1, start=10, consent="opted_out")
    check = shop.get(shop.create())["check"]
    assert check["recipients"] == 3 and check["dropped"]["by_reason"]["opted_out"] == 1


def test_an_uploaded_list_becomes_contacts_and_a_utility_template_needs_no_opt_in(app, graph):
    shop = Shop(app, graph)
    shop.template(name="receipt", category="UTILITY", components=[{"type": "BODY", "text": "Thanks"}])
    broadcast_id = shop.create(template={"name": "receipt", "language": "en_US"}, variables={},
                               audience={"wa_ids": ["+90 532 000 0001", "905320000002"]})
    assert shop.get(broadcast_id)["check"]["recipients"] == 2
    shop.call("start", broadcast_id)
    run(app)
    assert sorted(sends_to(graph)) == ["905320000001", "905320000002"]


def test_an_uploaded_list_past_the_plans_contacts_is_refused_with_the_upgrade_link(app, client, graph):
    from tests.broadcasts.test_api import api, body

    set_plan(app, max_contacts=3)
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(2)
    headers = api(app, shop)
    listed = {"wa_ids": ["905320000000", "905320000001", "905320000007", "905320000008"]}
    refused = client.post("/api/v1/broadcasts", json=body(shop, audience=listed), headers=headers)
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert (error["code"], error["details"]["new"]) == ("plan_limit", 2) and error["upgrade_url"]
    listed["wa_ids"] = listed["wa_ids"][:3]   # one new: within the limit
    assert client.post("/api/v1/broadcasts", json=body(shop, audience=listed), headers=headers).status_code == 201
