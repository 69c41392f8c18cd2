"""flask usage reconcile: our billable counts per tenant and category against Meta's pricing objects; the
differences listed per tenant, exit 1 on any, and each tenant's figures its own."""
from __future__ import annotations

from datetime import datetime, timedelta

from saas.costs.reconcile import reconcile, reconcile_yesterday
from saas.extensions import db
from saas.timeutil import utcnow
from tests.costs.conftest import make_shop, post_status, pricing, send


def test_equal_counts_exit_0_and_a_difference_exits_1_naming_the_tenant(priced, whatsapp, client, runner):
    mine = make_shop(priced, waba_id="400000000000001")
    theirs = make_shop(priced, waba_id="400000000000002")
    day = datetime(2025, 9, 2, 10)
    _, a = send(priced, mine, at=day, category="marketing", outside_window=True)
    _, b = send(priced, theirs, at=day, category="marketing", outside_window=True)
    post_status(priced, client, mine, a, pricing=pricing("marketing", billable=True))
    post_status(priced, client, theirs, b, pricing=pricing("marketing", billable=True))
    ok = runner.invoke(args=["usage", "reconcile", "--date", "2025-09-02"])
    assert ok.exit_code == 0 and "OK: our billable counts equal Meta's pricing" in ok.output, ok.output
    # Estimated free (inside the window), charged by Meta: one difference, for that tenant only.
    _, c = send(priced, theirs, at=day + timedelta(hours=1), category="utility")
    post_status(priced, client, theirs, c, pricing=pricing("utility", billable=True))
    differs = runner.invoke(args=["usage", "reconcile", "--date", "2025-09-02"])
    assert differs.exit_code == 1
    assert f"tenant {theirs.tenant_id} (" in differs.output and "utility: 0 billable by our count, 1 by Meta" in (
        differs.output)
    assert f"tenant {mine.tenant_id} (" not in differs.output
    assert runner.invoke(args=["usage", "reconcile", "--date", "2025-09-03"]).exit_code == 0
    assert runner.invoke(args=["usage", "reconcile", "--since", "2025-09-01"]).exit_code == 1
    with priced.app_context():
        assert [d.tenant_id for d in reconcile(db.session, day.date(), day.date(), tenant_id=mine.tenant_id)] == []
        db.session.remove()


def test_a_billable_message_meta_sent_no_pricing_for_is_a_difference(priced, runner):
    shop = make_shop(priced)
    send(priced, shop, at=datetime(2025, 9, 2), category="authentication", outside_window=True)
    result = runner.invoke(args=["usage", "reconcile", "--since", "2025-09-01"])
    assert result.exit_code == 1
    assert "authentication: 1 billable by our count, 0 by Meta's pricing" in result.output


def test_bad_options_are_refused_not_crashed(runner):
    assert runner.invoke(args=["usage", "reconcile", "--date", "yesterday"]).exit_code == 2
    assert runner.invoke(args=["usage", "reconcile", "--date", "2025-09-01", "--since", "2025-09-01"]).exit_code == 2
    assert runner.invoke(args=["usage", "reconcile", "--since", "2999-01-01"]).exit_code == 2


def test_the_daily_run_reconciles_yesterday(priced, caplog):
    shop = make_shop(priced)
    yesterday = utcnow() - timedelta(days=1)
    send(priced, shop, at=yesterday, category="marketing", outside_window=True)
    with priced.app_context():
        differences = reconcile_yesterday(db.session)
        db.session.remove()
    assert [(d.tenant_id, d.category, d.ours, d.meta) for d in differences] == [(shop.tenant_id, "marketing", 1, 0)]
    assert "Meta cost reconciliation" in caplog.text
