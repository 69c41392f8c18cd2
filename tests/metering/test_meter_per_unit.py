"""One Billing Meter per priced unit: overage goes to its unit's meter, and the check compares each meter.

The rules: each overage record's meter event carries the event name of the
unit its metric counts (conversations: STRIPE_METER_EVENT_NAME; messages:
STRIPE_MESSAGES_METER_EVENT_NAME), with the record's identifier as before;
``flask usage check`` compares each meter's summary for the tenant's customer
with what was reported of that unit (0 when nothing was), and says so when
Stripe has no meter for a unit that was reported.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import update

from saas.billing import stripe_client
from saas.extensions import db
from saas.metering.models import UsageRecord
from saas.metering.reconciliation import reconcile
from saas.metering.services import Metering, Usage, current_period
from saas.timeutil import utcnow
from tests.factories import make_tenant, sender
from tests.metering.test_message_plans import MARKETING, message_plan, template
from tests.metering.test_reporting import (  # noqa: F401
    EVENT, EVENTS, MESSAGES_EVENT, METER_EVENTS, connect, make_reporter, meter, messages_meter_id, meter_id, records,
    settled_clock, tenant_on,
)


def meter_messages(app, tenant_id, n, *, category="marketing", at=None) -> None:
    """``n`` priced messages of ``category`` metered at ``at`` (default now), as the send path meters them."""
    at = at or utcnow()
    metering = Metering(clock=lambda: at)
    period = current_period(None, at).start
    metric = f"messages.{category}"
    with app.app_context():
        conn = db.session.connection()
        for i in range(n):
            metering.meter(conn, Usage(tenant_id, period, {"messages": 1, metric: 1}), billed=metric,
                           subject=f"message:t{tenant_id}-{at.timestamp()}-{i}")
        db.session.commit()
        db.session.remove()


def bulk_tenant(app, included: int) -> int:
    """A tenant on "bulk", a plan billed per marketing or utility message with an overage price."""
    message_plan(app, included=included, overage=Decimal("0.8"))
    with app.app_context():
        tenant_id = make_tenant("bulk").id
        db.session.remove()
    return tenant_id


def events_of(stripe, customer) -> list[tuple[str, str]]:
    """(event name, identifier) of every meter event Stripe holds for ``customer``."""
    return sorted((e["event_name"], e["identifier"]) for e in stripe.meter_events.values()
                  if e["payload"]["stripe_customer_id"] == customer)


def check(app):
    with app.app_context():
        found = reconcile(db.session, stripe_client.client(), event_names=EVENTS, now=utcnow() + timedelta(minutes=2))
        db.session.remove()
    return found


def test_each_overage_record_goes_to_the_meter_of_its_unit(app, stripe, meter_id, messages_meter_id):
    starter = tenant_on(app, "starter", included=1)
    bulk = bulk_tenant(app, included=1)
    conversations_customer = connect(app, stripe, meter_id, starter)
    messages_customer = connect(app, stripe, messages_meter_id, bulk)
    meter(app, starter, 3)
    meter_messages(app, bulk, 3)

    with app.app_context():
        run = make_reporter(settled_clock()).report()
        overage = {t: [r.identifier for r in records(t) if r.overage] for t in (starter, bulk)}
        db.session.remove()

    assert events_of(stripe, conversations_customer) == sorted((EVENT, i) for i in overage[starter])
    assert events_of(stripe, messages_customer) == sorted((MESSAGES_EVENT, i) for i in overage[bulk])
    # The identifier stays the dedupe key and the idempotency key, whichever meter it goes to.
    assert all(c.idempotency_key == c.params["identifier"] for c in stripe.requests("POST", METER_EVENTS))
    assert run.reported_units == {"conversations": 2, "messages": 2}
    assert run.summary() == ("Reported 2 overage conversations and 2 overage messages for 2 tenants; "
                             "2 within included amounts; 0 waiting")
    assert check(app).problems == []


def test_a_period_with_both_units_sends_each_to_its_own_meter(app, stripe, meter_id, messages_meter_id):
    # Conversations left by the plan before, in the same period: overage under the message plan.
    bulk = bulk_tenant(app, included=1)
    customer = connect(app, stripe, messages_meter_id, bulk)
    meter(app, bulk, 1)
    meter_messages(app, bulk, 2, category="utility")

    with app.app_context():
        run = make_reporter(settled_clock()).report()
        rows = records(bulk)
        db.session.remove()

    assert [(r.metric, r.overage) for r in rows] == [
        ("conversations", True), ("messages.utility", False), ("messages.utility", True)]
    assert events_of(stripe, customer) == sorted([(EVENT, rows[0].identifier), (MESSAGES_EVENT, rows[2].identifier)])
    assert run.reported_units == {"conversations": 1, "messages": 1}
    found = check(app)
    # Two figures per metric, then one per meter.
    assert (found.problems, found.checked) == ([], 6)


def test_the_check_finds_a_difference_on_the_meter_where_it_is(app, stripe, meter_id, messages_meter_id):
    bulk = bulk_tenant(app, included=0)
    customer = connect(app, stripe, messages_meter_id, bulk)
    meter_messages(app, bulk, 2)
    with app.app_context():
        make_reporter(settled_clock()).report()
        db.session.remove()
    assert check(app).problems == []

    lost = next(k for k, e in stripe.meter_events.items() if e["event_name"] == MESSAGES_EVENT)
    del stripe.meter_events[lost]  # Stripe lost one message

    period = current_period(None).start
    assert check(app).problems == [
        f"tenant {bulk} period {period:%Y-%m-%d}: Stripe counts 1 overage messages for {customer}, 2 were reported "
        f"(meter {messages_meter_id}, event {MESSAGES_EVENT})"]


def test_an_event_on_the_wrong_meter_shows_on_both_meters(app, stripe, meter_id, messages_meter_id):
    bulk = bulk_tenant(app, included=0)
    customer = connect(app, stripe, messages_meter_id, bulk)
    meter_messages(app, bulk, 2)
    with app.app_context():
        make_reporter(settled_clock()).report()
        db.session.remove()

    next(iter(stripe.meter_events.values()))["event_name"] = EVENT  # counted by the conversations meter

    where = f"tenant {bulk} period {current_period(None).start:%Y-%m-%d}"
    assert check(app).problems == [
        f"{where}: Stripe counts 1 overage conversations for {customer}, 0 were reported "
        f"(meter {meter_id}, event {EVENT})",
        f"{where}: Stripe counts 1 overage messages for {customer}, 2 were reported "
        f"(meter {messages_meter_id}, event {MESSAGES_EVENT})"]


def test_a_unit_without_a_meter_is_a_problem_only_once_it_was_reported(app, stripe, meter_id):
    starter = tenant_on(app, "starter", included=0)
    connect(app, stripe, meter_id, starter)
    meter(app, starter, 2)
    with app.app_context():
        make_reporter(settled_clock()).report()
        db.session.remove()
    stripe.calls.clear()

    # No message was ever reported: the missing messages meter is no problem, and nothing asks about it.
    found = check(app)
    assert (found.problems, found.checked) == ([], 3)
    assert [c.path for c in stripe.requests("GET", "/v1/billing/meters/")] == [
        f"/v1/billing/meters/{meter_id}/event_summaries"]

    bulk = bulk_tenant(app, included=0)
    connect(app, stripe, meter_id, bulk)
    meter_messages(app, bulk, 2)
    with app.app_context():
        # Marked reported (as an older version that sent every unit to one meter would have).
        db.session.execute(update(UsageRecord).where(UsageRecord.tenant_id == bulk)
                           .values(overage=True, reported_at=utcnow()))
        db.session.commit()
        db.session.remove()

    assert check(app).problems == [
        f"tenant {bulk} period {current_period(None).start:%Y-%m-%d}: 2 overage messages were reported, but Stripe "
        f"has no Billing Meter for the event name '{MESSAGES_EVENT}'"]


def test_without_the_messages_meter_a_message_is_refused_by_stripe_and_waits(app, stripe, meter_id):
    bulk = bulk_tenant(app, included=0)
    connect(app, stripe, meter_id, bulk)
    meter_messages(app, bulk, 1)
    with app.app_context():
        run = make_reporter(settled_clock()).report()
        [record] = records(bulk)
        db.session.remove()
    # Not sent to the conversations meter instead: refused, retried once the meter exists.
    assert (run.reported, run.failed) == (0, 1)
    assert [c.params["event_name"] for c in stripe.requests("POST", METER_EVENTS)] == [MESSAGES_EVENT]
    assert record.reported_at is None and "No active meter found" in record.last_error


# -- the commands ---------------------------------------------------------------------------------

def test_report_command_says_what_it_reported_in_the_plans_unit(app, runner, stripe, messages_meter_id):
    bulk = bulk_tenant(app, included=0)
    connect(app, stripe, messages_meter_id, bulk)
    meter_messages(app, bulk, 3, at=utcnow() - timedelta(minutes=5))
    meter_messages(app, bulk, 2, at=utcnow() - timedelta(days=36))

    result = runner.invoke(args=["usage", "report"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Reported 3 overage messages for 1 tenant; 0 within included amounts; 0 waiting"
    assert lines[1] == ("Not sent, older than Stripe accepts: 2 overage messages; "
                        "'flask usage check' lists them.")


def test_check_command_compares_the_messages_meter(app, client, runner, stripe, meter_id, messages_meter_id,
                                                   monkeypatch):
    message_plan(app, included=0, overage=Decimal("0.8"))
    bulk = sender(client, "bulk")
    customer = connect(app, stripe, messages_meter_id, bulk.tenant_id)
    for to in ("15551230001", "15551230002"):
        assert bulk.send(payload=template(MARKETING, to)).status_code == 200
    # Settled: the reporter waits 2x this (0.1 s), and the records are a second old.
    monkeypatch.setitem(app.config, "RECOVER_SENDS_AFTER_SECONDS", 0.05)
    with app.app_context():
        db.session.execute(update(UsageRecord).values(created_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()
    assert runner.invoke(args=["usage", "report"]).output.startswith("Reported 2 overage messages for 1 tenant")
    assert "OK: 4 reported overage figures agree with the counters and Stripe." in \
        runner.invoke(args=["usage", "check"]).output

    stripe.meter_events.popitem()
    result = runner.invoke(args=["usage", "check"])

    assert result.exit_code == 1, result.output
    assert (f"Stripe counts 1 overage messages for {customer}, 2 were reported (meter {messages_meter_id}, "
            f"event {MESSAGES_EVENT})") in result.output
