"""Plan feature ``multi_number``: without it a tenant connects one live number, whatever else its plan says
(the sandbox number never counts); a second is refused with the plans that allow several, in the service, on
the portal's form, and under racing connects. The admin's plan form, the seeded catalogue and the README agree.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from saas import cache
from saas.billing import entitlements
from saas.billing.catalog import DEFAULT_PLANS
from saas.billing.models import FEATURE_NAMES, Plan
from saas.extensions import db
from saas.messaging.numbers import connections
from saas.tenants.models import Tenant
from tests.admin.test_plans import admin  # noqa: F401  (fixture: a platform admin logged in)
from tests.factories import make_tenant
from tests.messaging.numbers.test_numbers import connect, racing_connects, refused, writes
from tests.portal.test_numbers_portal import Owner, connect_error

pytestmark = pytest.mark.usefixtures("graph")

SEVERAL = "several live numbers need a plan with them: Pro (up to 5), Enterprise (up to 25)."


def add_plan(app, code="solo", *, numbers=5, features=("text", "template", "media", "webhooks")):
    """A paid plan that allows ``numbers`` phone numbers, with ``features`` (as an older plan row may be)."""
    with app.app_context():
        db.session.add(Plan(code=code, name=code.capitalize(), price_cents=4900, currency="usd", interval="month",
                            included_conversations=1000, overage_cents=5, rate_limit_per_minute=300,
                            phone_numbers_allowed=numbers, features=list(features), active=True, sort_order=15))
        db.session.commit()
        db.session.remove()


def tenant_on(app, plan) -> int:
    with app.app_context():
        tenant_id = make_tenant(plan).id
        db.session.remove()
    return tenant_id


def test_without_multi_number_a_plan_connects_one_live_number_whatever_it_allows(app, graph):
    add_plan(app, numbers=5)
    solo = tenant_on(app, "solo")
    first, second = graph.add_number(), graph.add_number()
    assert isinstance(connect(app, solo, first.phone_number_id, first.token), int)
    before = writes(app)

    refusal = refused(connect(app, solo, second.phone_number_id, second.token))

    assert refusal.field is None
    assert refusal.message == ("Your Solo plan allows 1 live number and 1 is connected; " + SEVERAL
                               + " Upgrade, or disconnect one to connect another.")
    assert graph.requests("GET", f"/{second.phone_number_id}") == []
    assert writes(app) == before
    with app.app_context():
        room = connections.allowance(db.session.get(Tenant, solo))
        assert (room.allowed, room.used) == (1, 1)
        db.session.remove()


def test_the_same_plan_with_multi_number_connects_up_to_its_allowance(app, graph):
    add_plan(app, numbers=2, features=("text", "multi_number"))
    duo = tenant_on(app, "solo")
    metas = [graph.add_number() for _ in range(3)]
    results = [connect(app, duo, m.phone_number_id, m.token) for m in metas]
    assert all(isinstance(r, int) for r in results[:2])
    assert "Solo plan allows 2 live numbers and 2 are connected; disconnect one or upgrade" in refused(results[2]).message


def test_taking_multi_number_off_a_plan_stops_the_second_connect(app, graph):
    pro = tenant_on(app, "pro")
    metas = [graph.add_number() for _ in range(2)]
    assert isinstance(connect(app, pro, metas[0].phone_number_id, metas[0].token), int)
    with app.app_context():
        plan = db.session.scalar(select(Plan).where(Plan.code == "pro"))
        plan.features = [f for f in plan.features if f != "multi_number"]
        db.session.commit()
        db.session.remove()
    message = refused(connect(app, pro, metas[1].phone_number_id, metas[1].token)).message
    assert message.startswith("Your Pro plan allows 1 live number and 1 is connected; several live numbers need a "
                              "plan with them: Enterprise (up to 25).")


def test_the_portal_form_says_which_plans_allow_a_second_number(app, client, graph):
    add_plan(app, numbers=5)
    owner = Owner(app, client, plan="solo")
    first, second = graph.add_number(), graph.add_number()
    assert owner.connect(first.phone_number_id, first.token).status_code == 303
    page = client.get("/numbers").get_data(as_text=True)
    allowance = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", re.search(
        r'<p id="allowance">(.*?)</p>', page, re.S).group(1))).split())
    assert allowance.startswith("Your Solo plan allows 1 live number; 1 connected. The sandbox number does not "
                                "count. Several live numbers need a plan with them: Pro (up to 5), Enterprise (up "
                                "to 25).")

    response = owner.connect(second.phone_number_id, second.token)

    assert response.status_code == 400
    assert SEVERAL in connect_error(response.get_data(as_text=True))
    # The plan cards say what the plans allow: one number for Solo, whatever its row says.
    billing = client.get("/billing").get_data(as_text=True)
    assert "<li>1 phone number</li>" in re.search(r'id="plan-solo">(.*?)</article>', billing, re.S).group(1)
    assert "<li>5 phone numbers</li>" in re.search(r'id="plan-pro">(.*?)</article>', billing, re.S).group(1)


def test_racing_connects_without_multi_number_connect_one(app, graph, backend):
    if backend != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL with real parallel connections")
    add_plan(app, numbers=5)
    solo = tenant_on(app, "solo")
    results = racing_connects(app, graph, solo, 4)
    assert sum(isinstance(r, int) for r in results) == 1
    assert all(SEVERAL in r.message for r in results if not isinstance(r, int))
    with app.app_context():
        cache.clear_all()
        assert connections.allowance(db.session.get(Tenant, solo)).used == 1
        db.session.remove()


# -- the plan form, the catalogue and the README agree ----------------------------------------------------

def test_every_seeded_plan_is_one_the_admin_form_accepts_unchanged(app, admin):  # noqa: F811
    for spec in DEFAULT_PLANS:
        response = admin.edit(spec["code"])
        assert response.status_code == 302, (spec["code"], response.get_data(as_text=True))


@pytest.mark.parametrize("numbers, features, message", [
    ("5", ["text"], "More than 1 live number needs the feature “Several phone numbers”: tick it, or allow 1."),
    ("1", ["text", "multi_number"], "“Several phone numbers” is ticked: allow 2 or more, or untick it."),
])
def test_the_admin_form_refuses_numbers_and_the_feature_that_disagree(app, admin, numbers, features,  # noqa: F811
                                                                      message):
    response = admin.create(phone_numbers_allowed=numbers, features=features)
    assert response.status_code == 400
    assert f'<small class="field-error" id="phone_numbers_allowed-error">{message}</small>' in \
        response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Plan).where(Plan.code == "gold")) is None
        db.session.remove()


def test_the_readme_plan_table_is_the_seeded_catalogue():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = readme.split("## Plans", 1)[1].split("\n\n")[2]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header[0] == "code" and "live numbers" in header and header[-1] == "features"
    features: set[str] = set()
    for row, spec in zip(rows, DEFAULT_PLANS, strict=True):
        listed = row[-1]
        if listed == "all":
            features = set(FEATURE_NAMES)
        elif listed.startswith("+ "):
            features = features | {name.strip() for name in listed[2:].split(",")}
        else:
            features = {name.strip() for name in listed.split(",")}
        live = 0 if spec["price_cents"] == 0 else entitlements.live_numbers_allowed(Plan(**{
            k: spec[k] for k in ("phone_numbers_allowed", "features")}))
        assert (row[0], features, row[header.index("live numbers")]) == (
            spec["code"], set(spec["features"]), f"{live} (sandbox only)" if live == 0 else str(live))
