"""The back office answers in plain data, from a session and a tenant id, with no request."""
from __future__ import annotations

import dataclasses

from saas.back_office import tenants as office
from saas.back_office.audit_log import audit_log
from saas.back_office.records import Page
from saas.billing.catalog import plan_by_code
from saas.billing.standing import PastDueGrace
from saas.extensions import db
from saas.timeutil import utcnow
from tests.factories import make_tenant

GRACE = PastDueGrace(7)


def model_rows_in(value, path="answer") -> list[str]:
    """Where in ``value`` a database row (rather than a copy of it) is kept."""
    if isinstance(value, db.Model):
        return [path]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = []
        for f in dataclasses.fields(value):
            found += model_rows_in(getattr(value, f.name), f"{path}.{f.name}")
        return found
    if isinstance(value, Page):
        return model_rows_in(value.items, f"{path}.items")
    if isinstance(value, (list, tuple)):
        return [p for i, item in enumerate(value) for p in model_rows_in(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in model_rows_in(item, f"{path}[{key!r}]")]
    return []


def test_every_answer_is_plain_data_that_outlives_its_session(app, ctx):
    tenant = make_tenant("starter", name="Acme")
    tenant_id = tenant.id
    metering = app.extensions["metering"]
    answers = {
        "dashboard": office.dashboard(db.session, metering, now=utcnow(), grace=GRACE),
        "list": office.list_tenants(db.session, metering, "acme", now=utcnow(), grace=GRACE),
        "detail": office.tenant_detail(db.session, tenant_id, now=utcnow(), grace=GRACE),
        "choices": office.plan_choices(db.session, tenant_id),
        "audit": audit_log(db.session, tenant_id),
        "found": office.find_tenant(db.session, tenant_id),
    }
    db.session.remove()
    assert [p for name, answer in answers.items() for p in model_rows_in(answer, name)] == []
    assert [row.tenant.name for row in answers["list"].items] == ["Acme"]
    assert answers["detail"].plan.code == "starter" and answers["detail"].revenue_cents == 2900
    assert answers["detail"].users[0].role == "owner"
    assert "starter" in [plan.code for plan in answers["dashboard"].plans]


def test_an_id_that_names_no_tenant_is_none_everywhere(ctx):
    assert office.find_tenant(db.session, None) is None
    assert office.find_tenant(db.session, 424242) is None
    assert office.tenant_detail(db.session, 424242, now=utcnow(), grace=GRACE) is None
    assert office.set_status(db.session, 424242, "suspended", actor="support") is None
    assert office.assign_plan(db.session, 424242, "pro", actor="support", stripe_configured=False) is None


def test_set_status_says_whether_it_changed_anything(ctx):
    tenant_id = make_tenant().id
    first = office.set_status(db.session, tenant_id, "suspended", actor="support")
    again = office.set_status(db.session, tenant_id, "suspended", actor="support")
    assert (first.changed, first.tenant.status) == (True, "suspended")
    assert (again.changed, again.tenant.status) == (False, "suspended")


def test_an_archived_plan_is_offered_only_to_the_tenant_holding_it(ctx):
    holder, other = make_tenant().id, make_tenant().id
    assert office.assign_plan(db.session, holder, "starter", actor="support", stripe_configured=False).code == \
        "starter"
    plan_by_code("starter").active = False
    db.session.commit()
    assert "starter" in [plan.code for plan in office.plan_choices(db.session, holder)]
    assert "starter" not in [plan.code for plan in office.plan_choices(db.session, other)]
