"""/api/v1/exports/...: each export's columns exactly, its rows in time order over the range asked, cells a
spreadsheet would run made inert, the plan's gate on every export, the range checked, and another tenant's
rows never in a file."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.exports.services import KINDS
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from tests.exports.helpers import DAY1, DAY2, DAY3, HOSTILE, cost, message, order, record, rows_of
from tests.factories import sender

RANGE = "from=2026-11-02&to=2026-11-03"  # DAY1 and DAY2 in, DAY3 (the 4th at midnight) out


@pytest.fixture
def pro(client):
    return sender(client, "pro")


def test_messages_export_has_its_columns_and_each_message_with_its_cost(app, client, pro):
    with app.app_context():
        first = message(pro.tenant_id, DAY1, pricing_category="marketing", pricing_type="regular")
        cost(pro.tenant_id, first, DAY1, estimated=25000, confirmed=30500)
        failed = message(pro.tenant_id, DAY2, status="failed", error_code=131026, error_title="Message undeliverable")
        cost(pro.tenant_id, failed, DAY2, estimated=1200000, confirmed=None)
        inbound = message(pro.tenant_id, DAY2, direction="in", type="text", status="received", category=None)
        message(pro.tenant_id, DAY3)
        display = db.session.scalar(select(PhoneNumber.display_number).where(PhoneNumber.tenant_id == pro.tenant_id))
        db.session.commit()
        db.session.remove()
    answer = pro.get(f"/api/v1/exports/messages?{RANGE}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert 'filename="messages-20261102-20261104.csv"' in answer.headers["Content-Disposition"]
    header, *rows = rows_of(answer)
    assert header == ["id", "created_at", "number", "wa_id", "direction", "type", "status", "category",
                      "pricing_category", "pricing_type", "currency", "estimated_cost", "confirmed_cost",
                      "error_code", "error_title"]
    assert [int(r[0]) for r in rows] == [first, failed, inbound]
    assert rows[0][1:2] + rows[0][3:] == ["2026-11-02T09:30:00Z", "905320000001", "out", "template", "delivered",
                                          "marketing", "marketing", "regular", "USD", "0.025", "0.0305", "", ""]
    assert rows[1][11:] == ["1.2", "", "131026", "Message undeliverable"]
    assert rows[2][4:8] == ["in", "text", "received", ""] and rows[2][10:13] == ["", "", ""]
    assert rows[0][2] == "'" + display  # "+1 555..." starts like a formula too: a spreadsheet shows it as text


def test_every_cell_a_spreadsheet_would_run_is_written_after_an_apostrophe(app, client, pro):
    with app.app_context():
        for index, text in enumerate(HOSTILE):
            message(pro.tenant_id, DAY1.replace(minute=index), error_title=text)
            order(pro.tenant_id, DAY1.replace(minute=index), f"R{index}", name=text, customer_name=text)
        db.session.commit()
        db.session.remove()
    titles = [r[14] for r in rows_of(pro.get(f"/api/v1/exports/messages?{RANGE}"))[1:]]
    assert titles == ["'" + text for text in HOSTILE]
    orders = rows_of(pro.get(f"/api/v1/exports/orders?{RANGE}"))[1:]
    assert [(r[2], r[7]) for r in orders] == [("'" + text, "'" + text) for text in HOSTILE]


def test_orders_export_has_its_columns(app, client, pro):
    with app.app_context():
        order(pro.tenant_id, DAY1, "1001", total="59.90", currency="EUR", wa_id="905320000001",
              tracking_number="1Z999", carrier="UPS")
        order(pro.tenant_id, DAY3, "1002")
        db.session.commit()
        db.session.remove()
    header, *rows = rows_of(pro.get(f"/api/v1/exports/orders?{RANGE}"))
    assert header == ["id", "reference", "name", "source", "state", "state_at", "wa_id", "customer_name", "items",
                      "total", "currency", "tracking_number", "carrier", "created_at", "updated_at"]
    assert [r[1:] for r in rows] == [["1001", "#1001", "api", "paid", "2026-11-02T09:30:00Z", "905320000001", "",
                                      "2 x Shirt; 1 x Hat", "59.90", "EUR", "1Z999", "UPS", "2026-11-02T09:30:00Z",
                                      "2026-11-02T09:30:00Z"]]


def test_daily_usage_counts_included_and_overage_per_day_and_metric(app, client, pro):
    with app.app_context():
        for overage in (False, False, True, None):
            record(pro.tenant_id, DAY1, "messages.marketing", overage=overage)
        record(pro.tenant_id, DAY1, "messages.marketing", overage=True, voided=True)  # un-billed: left out
        record(pro.tenant_id, DAY1, "conversations", overage=False, quantity=3)
        record(pro.tenant_id, DAY2, "messages.utility", overage=True)
        record(pro.tenant_id, DAY3, "messages.utility", overage=True)
        db.session.commit()
        db.session.remove()
    rows = rows_of(pro.get(f"/api/v1/exports/usage?{RANGE}"))
    assert rows == [["day", "metric", "count", "included", "overage", "undecided"],
                    ["2026-11-02", "conversations", "3", "3", "0", "0"],
                    ["2026-11-02", "messages.marketing", "4", "2", "1", "1"],
                    ["2026-11-03", "messages.utility", "1", "0", "1", "0"]]


def test_usage_records_filter_by_unit_and_overage(app, client, pro):
    with app.app_context():
        wanted = record(pro.tenant_id, DAY1, "messages.marketing", overage=True)
        record(pro.tenant_id, DAY1, "messages.marketing", overage=False)
        record(pro.tenant_id, DAY1, "conversations", overage=True)
        also = record(pro.tenant_id, DAY2, "messages.authentication", overage=True)
        db.session.commit()
        db.session.remove()
    header, *rows = rows_of(pro.get(f"/api/v1/exports/usage-records?{RANGE}&unit=messages&overage=1"))
    assert header == ["id", "created_at", "metric", "quantity", "subject", "overage", "reported_at"]
    assert [int(r[0]) for r in rows] == [wanted, also]
    assert rows[0][2:] == ["messages.marketing", "1", rows[0][4], "true", "2026-11-02T09:30:00Z"]
    assert len(rows_of(pro.get(f"/api/v1/exports/usage-records?{RANGE}"))) == 5
    bad = pro.get(f"/api/v1/exports/usage-records?{RANGE}&unit=minutes")
    assert bad.status_code == 400 and "unit" in bad.get_json()["error"]["details"]
    assert pro.get(f"/api/v1/exports/usage-records?{RANGE}&overage=maybe").status_code == 400


@pytest.mark.parametrize("name", list(KINDS))
def test_every_export_is_refused_without_the_feature_with_the_upgrade_link(client, name):
    free = sender(client, "free")
    answer = free.get(f"/api/v1/exports/{name}?{RANGE}")
    assert answer.status_code == 403, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert error["code"] == "feature_not_in_plan" and error["upgrade_url"]
    assert error["details"]["feature"] == "analytics_export"


def test_the_overage_records_an_invoice_charges_are_open_to_a_plan_without_exports(app, client):
    starter = sender(client, "starter")
    with app.app_context():
        charged = record(starter.tenant_id, DAY1, "conversations", overage=True)
        record(starter.tenant_id, DAY1, "conversations", overage=False)
        db.session.commit()
        db.session.remove()
    answer = starter.get(f"/api/v1/exports/usage-records?{RANGE}&overage=1")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert [int(row[0]) for row in rows_of(answer)[1:]] == [charged]
    for query in ("", "&overage=0", "&unit=conversations"):
        refused = starter.get(f"/api/v1/exports/usage-records?{RANGE}{query}")
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "feature_not_in_plan"


@pytest.mark.parametrize("query, field", [
    ("from=yesterday", "from"), ("to=2026-13-01", "to"), ("from=2026-11-05&to=2026-11-01", "to"),
    ("from=2024-01-01&to=2026-01-01", "to"), ("from=1999-12-31&to=2000-01-02", "from"),
    ("from=" + "2" * 41, "from"), ("from=2026-11-01%00", "from"), ("to=2026-11-01T25:00:00Z", "to"),
    ("to=9999-12-31", "to"), ("to=9999-12-31T23:59:59-01:00", "to"), ("from=0001-01-01T00:00:00%2B01:00", "from"),
])
def test_a_range_that_names_no_dates_or_is_too_long_is_refused_with_the_field(client, pro, query, field):
    for name in KINDS:
        answer = pro.get(f"/api/v1/exports/{name}?{query}")
        assert answer.status_code == 400, (name, query)
        error = answer.get_json()["error"]
        assert error["code"] == "invalid_request" and field in error["details"], (name, query, error)


def test_times_with_zones_and_the_default_range(app, client, pro):
    with app.app_context():
        early = message(pro.tenant_id, DAY1)
        message(pro.tenant_id, DAY2)
        db.session.commit()
        db.session.remove()
    # 12:30 at +03:00 is 09:30 UTC: the instant ``from`` includes, the instant ``to`` leaves out.
    rows = rows_of(pro.get("/api/v1/exports/messages?from=2026-11-02T12:30:00%2B03:00&to=2026-11-03T00:00:00Z"))
    assert [int(r[0]) for r in rows[1:]] == [early]
    assert rows_of(pro.get("/api/v1/exports/messages?from=2026-11-02T09:30:01Z&to=2026-11-03"))[1:][0][0] != str(early)
    assert pro.get("/api/v1/exports/messages").status_code == 200  # the last 30 days


def test_another_tenants_rows_are_never_in_an_export(app, client, pro):
    other = sender(client, "pro")
    with app.app_context():
        mine = message(pro.tenant_id, DAY1)
        theirs = message(other.tenant_id, DAY1)
        cost(other.tenant_id, theirs, DAY1, estimated=1, confirmed=1)
        record(other.tenant_id, DAY1, "conversations", overage=True)
        order(other.tenant_id, DAY1, "9999")
        db.session.commit()
        db.session.remove()
    assert [r[0] for r in rows_of(pro.get(f"/api/v1/exports/messages?{RANGE}"))[1:]] == [str(mine)]
    for name in ("usage", "usage-records", "orders"):
        assert len(rows_of(pro.get(f"/api/v1/exports/{name}?{RANGE}"))) == 1, name
    assert [r[0] for r in rows_of(other.get(f"/api/v1/exports/messages?{RANGE}"))[1:]] == [str(theirs)]
