"""Overage to Stripe's Billing Meter, exactly once.

The rules: only conversations past the plan's included amount are sent, each
as one meter event carrying the record's identifier (and the same idempotency
key); included and voided ones are never sent; nothing is decided before it
has settled; a failure loses nothing and backs off; a resend after a crash or
a timeout is counted once by Stripe; parallel reporters send each record once;
the check finds what was not reported and where Stripe disagrees.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from saas import create_app
from saas.billing import stripe_client
from saas.billing.models import Plan, Subscription
from saas.billing.services import subscription_for
from saas.extensions import db
from saas.metering.models import UsageRecord
from saas.metering.reconciliation import reconcile
from saas.metering.reporting import NO_CUSTOMER, NO_SUBSCRIPTION, TOO_OLD, UsageReporter, retry_delay, unix
from saas.metering.services import Metering, Receipt, Usage, current_period
from saas.tenants.models import Tenant
from saas.timeutil import utcnow
from tests.factories import make_tenant, sender, set_quota

EVENT = "whatsapp_conversations"
MESSAGES_EVENT = "whatsapp_messages"
# Each priced unit's meter event name, as the settings give them by default.
EVENTS = {"conversations": EVENT, "messages": MESSAGES_EVENT}
# What a send that opens a service conversation counts.
CONVERSATION_SENT = {"messages": 1, "conversations": 1, "conversations.service": 1}
SETTLE = timedelta(seconds=60)
METER_EVENTS = "/v1/billing/meter_events"


@pytest.fixture(autouse=True)
def _postgres_only(request, backend):
    if request.node.get_closest_marker("postgres_only") and backend != "postgresql":
        pytest.skip("needs real parallel connections: PostgreSQL only")


class Clock:
    """The reporter's clock, moved by hand."""

    def __init__(self, now=None):
        self.now = now or utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


def settled_clock() -> Clock:
    """A clock at which everything metered until now has settled."""
    return Clock(utcnow() + SETTLE + timedelta(seconds=1))


def make_reporter(clock, client=None, **options) -> UsageReporter:
    return UsageReporter(client or stripe_client.client(), event_names=EVENTS, settle_after=SETTLE, clock=clock,
                         **options)


def create_meter(app, event_name: str, unit: str) -> str:
    """A Billing Meter created through the API, its id on every plan of ``unit`` (as the catalog sync leaves it)."""
    with app.app_context():
        meter = stripe_client.client().v1.billing.meters.create(params={
            "display_name": f"WhatsApp {unit}", "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"}})
        db.session.execute(update(Plan).where(Plan.billing_unit == unit).values(stripe_meter_id=meter.id))
        db.session.commit()
        db.session.remove()
    return meter.id


@pytest.fixture
def meter_id(app, stripe):
    """The conversations meter."""
    return create_meter(app, EVENT, "conversations")


@pytest.fixture
def messages_meter_id(app, stripe):
    """The messages meter."""
    return create_meter(app, MESSAGES_EVENT, "messages")


def connect(app, stripe, meter_id, tenant_id, *, customer=True, subscription=True) -> str | None:
    """Give a tenant what Checkout would: a Stripe customer and a subscription with the metered price."""
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        customer_id = None
        if customer:
            customer_id = stripe.customer(tenant_id=str(tenant_id))["id"]
            tenant.stripe_customer_id = customer_id
        if subscription:
            price = stripe.price({"currency": "usd", "unit_amount_decimal": "5", "metadata": {"kind": "overage"},
                                  "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id}})
            subscription_for(tenant).stripe_subscription_id = stripe.subscription(customer_id or "cus_none",
                                                                                  [price])["id"]
        db.session.commit()
        db.session.remove()
    return customer_id


def tenant_on(app, plan="starter", included=3) -> int:
    with app.app_context():
        set_quota(plan, included)
        tenant_id = make_tenant(plan).id
        db.session.remove()
    return tenant_id


def meter(app, tenant_id, n, *, at=None) -> list[str]:
    """``n`` billable conversations metered at ``at`` (default now), as the send path meters them."""
    at = at or utcnow()
    metering = Metering(clock=lambda: at)
    period = current_period(None, at).start
    subjects = [f"conversation:t{tenant_id}-{at.timestamp()}-{i}" for i in range(n)]
    with app.app_context():
        conn = db.session.connection()
        for subject in subjects:
            metering.meter(conn, Usage(tenant_id, period, CONVERSATION_SENT), billed="conversations", subject=subject)
        db.session.commit()
        db.session.remove()
    return subjects


def records(tenant_id=None) -> list[SimpleNamespace]:
    """The usage records as they are now (copies: the read's transaction is over, as SQLite needs)."""
    query = select(UsageRecord).order_by(UsageRecord.id)
    if tenant_id is not None:
        query = query.where(UsageRecord.tenant_id == tenant_id)
    columns = [c.key for c in UsageRecord.__table__.columns]
    try:
        return [SimpleNamespace(**{name: getattr(r, name) for name in columns})
                for r in db.session.scalars(query.execution_options(populate_existing=True))]
    finally:
        db.session.rollback()


def sent_identifiers(stripe) -> list[str]:
    return [call.params["identifier"] for call in stripe.requests("POST", METER_EVENTS)]


def stripe_total(stripe, customer_id) -> float:
    return sum(float(e["payload"]["value"]) for e in stripe.meter_events.values()
               if e["payload"]["stripe_customer_id"] == customer_id)


# -- what is sent ----------------------------------------------------------------------------------

def test_only_conversations_past_the_included_amount_are_sent_once_each(app, client, stripe, meter_id):
    starter = sender(client, "starter")
    with app.app_context():
        set_quota("starter", 3)
    customer = connect(app, stripe, meter_id, starter.tenant_id)
    for n in range(5):
        assert starter.send(to=f"1555123000{n}").status_code == 200
    assert starter.send(to="15551230000", body="same window, nothing new").status_code == 200

    with app.app_context():
        run = make_reporter(settled_clock()).report()
        rows = records(starter.tenant_id)
        db.session.remove()

    assert (run.reported, run.included, run.tenants, run.failed) == (2, 3, {starter.tenant_id}, 0)
    assert [r.overage for r in rows] == [False, False, False, True, True]
    assert all(r.reported_at is not None for r in rows)
    calls = stripe.requests("POST", METER_EVENTS)
    assert len(calls) == 2
    for call, record in zip(calls, rows[3:]):
        assert call.params == {"event_name": EVENT, "identifier": record.identifier,
                               "timestamp": str(unix(record.created_at)),
                               "payload": {"stripe_customer_id": customer, "value": "1"}}
        assert call.idempotency_key == record.identifier
        assert call.stripe_version == "2026-10-28.endive"
    assert stripe_total(stripe, customer) == 2


def test_a_second_run_sends_nothing(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=1)
    connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 4)
    clock = settled_clock()
    first = make_reporter(clock).report()
    clock.advance(hours=2)
    second = make_reporter(clock).report()
    assert (first.reported, first.included) == (3, 1)
    assert (second.reported, second.included, second.attempted) == (0, 0, 0)
    assert len(stripe.requests("POST", METER_EVENTS)) == 3


def test_included_amount_counts_what_earlier_runs_decided(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=3)
    customer = connect(app, stripe, meter_id, tenant_id)
    start = utcnow()
    meter(app, tenant_id, 2, at=start)
    clock = Clock(start + SETTLE + timedelta(seconds=1))
    assert make_reporter(clock).report().included == 2
    meter(app, tenant_id, 3, at=start + timedelta(minutes=5))
    clock.advance(minutes=10)
    run = make_reporter(clock).report()
    assert (run.included, run.reported) == (1, 2)
    assert [r.overage for r in records(tenant_id)] == [False, False, False, True, True]
    assert stripe_total(stripe, customer) == 2


def test_voided_records_are_never_sent_and_never_counted(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=2)
    connect(app, stripe, meter_id, tenant_id)
    subjects = meter(app, tenant_id, 4)
    # A refused send takes its conversation back: its record is voided.
    usage = Usage(tenant_id, current_period(None).start, CONVERSATION_SENT)
    Metering().reverse(db.session.connection(), Receipt(usage, subject=subjects[0]))
    db.session.commit()

    run = make_reporter(settled_clock()).report()

    rows = records(tenant_id)
    assert rows[0].voided_at is not None and rows[0].overage is None and rows[0].reported_at is None
    assert [r.overage for r in rows[1:]] == [False, False, True]
    assert (run.included, run.reported) == (2, 1)
    assert sent_identifiers(stripe) == [rows[3].identifier]


def test_overage_voided_after_it_was_decided_is_not_sent(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    connect(app, stripe, meter_id, tenant_id)
    subjects = meter(app, tenant_id, 2)
    clock = settled_clock()
    make_reporter(clock).decide()
    usage = Usage(tenant_id, current_period(None).start, CONVERSATION_SENT)
    Metering().reverse(db.session.connection(), Receipt(usage, subject=subjects[1]))
    db.session.commit()

    run = make_reporter(clock).report()

    rows = records(tenant_id)
    assert [(r.overage, r.voided_at is not None, r.reported_at is not None) for r in rows] == \
        [(True, False, True), (True, True, False)]
    assert (run.reported, run.waiting) == (1, {})
    assert sent_identifiers(stripe) == [rows[0].identifier]


def test_a_plan_without_overage_never_reports_it(app, ctx, stripe, meter_id):
    free = tenant_on(app, "free", included=2)
    connect(app, stripe, meter_id, free)
    no_customer = tenant_on(app, "free", included=2)
    meter(app, free, 5)
    meter(app, no_customer, 3)

    run = make_reporter(settled_clock()).report()

    assert (run.included, run.reported, run.waiting) == (8, 0, {})
    assert all(r.overage is False and r.reported_at is not None for r in records())
    assert stripe.requests("POST", METER_EVENTS) == []


def test_the_plan_in_effect_decides(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, "starter", included=1)
    connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 3)
    # Canceled: the free plan's rights apply, and the free plan has no overage.
    db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant_id)).status = "canceled"
    db.session.commit()

    run = make_reporter(settled_clock()).report()

    assert (run.included, run.reported) == (3, 0)
    assert stripe.requests("POST", METER_EVENTS) == []


def test_records_newer_than_the_settle_delay_wait(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    connect(app, stripe, meter_id, tenant_id)
    start = utcnow()
    meter(app, tenant_id, 2, at=start)
    clock = Clock(start + SETTLE - timedelta(seconds=1))

    early = make_reporter(clock).report()
    assert (early.reported, early.included, early.waiting) == (0, 0, {"settling": 2})
    assert [r.overage for r in records(tenant_id)] == [None, None]
    assert stripe.requests("POST", METER_EVENTS) == []

    clock.advance(seconds=2)
    later = make_reporter(clock).report()
    assert (later.reported, later.waiting) == (2, {})


def test_settle_delay_is_twice_the_recovery_threshold(app):
    reporter = UsageReporter.from_config({**app.config, "RECOVER_SENDS_AFTER_SECONDS": 30.0}, client=None)
    assert reporter.settle_after == timedelta(seconds=60)
    assert reporter.event_names == {"conversations": app.config["STRIPE_METER_EVENT_NAME"],
                                    "messages": app.config["STRIPE_MESSAGES_METER_EVENT_NAME"]} == EVENTS


def test_a_tenant_without_customer_or_subscription_waits_and_says_why(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=1)
    meter(app, tenant_id, 3)
    clock = settled_clock()

    run = make_reporter(clock).report()
    assert (run.reported, run.included, run.waiting) == (0, 0, {"no Stripe customer": 3})
    assert {(r.overage, r.last_error) for r in records(tenant_id)} == {(None, NO_CUSTOMER)}
    assert "3 waiting (3 no Stripe customer)" in run.summary()

    connect(app, stripe, meter_id, tenant_id, subscription=False)
    run = make_reporter(clock).report()
    assert run.waiting == {"no Stripe subscription": 3}
    assert {(r.overage, r.last_error) for r in records(tenant_id)} == {(None, NO_SUBSCRIPTION)}

    db.session.execute(update(Subscription).where(Subscription.tenant_id == tenant_id)
                       .values(stripe_subscription_id="sub_fake_later"))
    db.session.commit()
    run = make_reporter(clock).report()
    assert (run.reported, run.included, run.waiting) == (2, 1, {})
    assert {r.last_error for r in records(tenant_id)} == {None}


# -- failures ----------------------------------------------------------------------------------

def test_stripe_down_loses_nothing_backs_off_and_later_sends_each_once(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    customer = connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 3)
    first, second, third = [r.identifier for r in records(tenant_id)]
    stripe.fail("POST", METER_EVENTS, status=500, times=1000)
    clock = settled_clock()

    run = make_reporter(clock).report()
    # Stripe is down: the run stops at the first failure instead of trying every record.
    assert (run.attempted, run.failed, run.all_failed) == (1, 1, True)
    assert run.stopped.startswith("Stripe is unavailable")
    record = records(tenant_id)[0]
    assert (record.attempts, record.reported_at, record.next_attempt_at) == (1, None, clock.now + timedelta(seconds=30))
    assert "HTTP 500" in record.last_error

    clock.advance(seconds=29)
    make_reporter(clock).report()
    assert sent_identifiers(stripe) == [first, second]  # the first waits out its 30 s

    clock.advance(seconds=1)
    make_reporter(clock).report()
    assert sent_identifiers(stripe) == [first, second, first]
    assert records(tenant_id)[0].next_attempt_at == clock.now + timedelta(seconds=60)

    # An hour of outage later Stripe is back: one run sends everything, each once.
    for _ in range(12):
        clock.advance(minutes=5)
        make_reporter(clock).report()
    assert all(r.reported_at is None for r in records(tenant_id))
    assert max(r.attempts for r in records(tenant_id)) >= 4
    stripe.injected.clear()
    clock.advance(hours=1)
    run = make_reporter(clock).report()
    assert (run.reported, run.failed, run.waiting) == (3, 0, {})
    assert sorted(stripe.meter_events) == sorted([first, second, third])
    assert stripe_total(stripe, customer) == 3


def test_backoff_doubles_from_30_seconds_up_to_an_hour():
    assert [retry_delay(n).total_seconds() for n in range(1, 10)] == \
        [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_refused_record_does_not_stop_the_others(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    customer = connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 3)
    stripe.fail("POST", METER_EVENTS, status=400)

    run = make_reporter(settled_clock()).report()

    assert (run.attempted, run.failed, run.reported, run.stopped) == (3, 1, 2, None)
    rows = records(tenant_id)
    assert rows[0].reported_at is None and rows[0].attempts == 1 and "InvalidRequestError" in rows[0].last_error
    assert stripe_total(stripe, customer) == 2


def test_a_timeout_after_stripe_counted_the_event_is_resent_and_counted_once(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    customer = connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 1)
    stripe.delay("POST", METER_EVENTS, seconds=3)  # the client gives up after 2 s; Stripe still counts it
    clock = settled_clock()

    run = make_reporter(clock).report()
    assert (run.failed, run.reported) == (1, 0)
    record = records(tenant_id)[0]
    assert record.reported_at is None and "APIConnectionError" in record.last_error
    deadline = time.monotonic() + 5
    while not stripe.meter_events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stripe_total(stripe, customer) == 1

    clock.advance(seconds=30)
    run = make_reporter(clock).report()
    assert run.reported == 1
    assert sent_identifiers(stripe) == [record.identifier] * 2
    assert {c.idempotency_key for c in stripe.requests("POST", METER_EVENTS)} == {record.identifier}
    assert stripe_total(stripe, customer) == 1


class Killed(BaseException):
    """The process dies (as KeyboardInterrupt or SystemExit would end it)."""


class CrashAfterSending:
    """The app's Stripe client, except that the process "dies" right after Stripe accepted the n-th event."""

    def __init__(self, client, n):
        self.sent = 0

        def create(params, options=None):
            answer = client.v1.billing.meter_events.create(params=params, options=options)
            self.sent += 1
            if self.sent == n:
                raise Killed("after Stripe accepted the event, before it was marked")
            return answer

        self.v1 = SimpleNamespace(billing=SimpleNamespace(meter_events=SimpleNamespace(create=create)))


def test_a_crash_between_sending_and_marking_resends_and_stripe_counts_once(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=1)
    customer = connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 6)
    clock = settled_clock()

    with pytest.raises(Killed):
        make_reporter(clock, CrashAfterSending(stripe_client.client(), 3)).report()
    rows = records(tenant_id)
    # The batch's marks were rolled back with the crash: Stripe has three, we think none was reported.
    assert [r.reported_at for r in rows if r.overage] == [None] * 5
    assert len(stripe.meter_events) == 3

    # Idempotency keys expire after a day; the identifier alone still dedupes.
    stripe.expire_idempotency_keys()
    run = make_reporter(clock).report()

    assert run.reported == 5
    overage = [r.identifier for r in records(tenant_id) if r.overage]
    assert sent_identifiers(stripe) == overage[:3] + overage
    assert all(c.idempotency_key == c.params["identifier"] for c in stripe.requests("POST", METER_EVENTS))
    assert sorted(stripe.meter_events) == sorted(overage)
    assert stripe_total(stripe, customer) == 5
    assert make_reporter(clock).report().attempted == 0


def test_records_older_than_stripe_accepts_are_marked_not_retried_and_listed(app, ctx, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    customer = connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 2, at=utcnow() - timedelta(days=36))
    meter(app, tenant_id, 1)
    clock = settled_clock()

    run = make_reporter(clock).report()
    clock.advance(hours=3)
    again = make_reporter(clock).report()

    assert (run.reported, run.too_old, again.attempted, again.too_old) == (1, 2, 0, 2)
    old = records(tenant_id)[:2]
    assert {(r.overage, r.reported_at, r.last_error) for r in old} == {(True, None, TOO_OLD)}
    assert stripe_total(stripe, customer) == 1
    check = reconcile(db.session, stripe_client.client(), event_names=EVENTS, now=clock.now)
    assert any("2 overage conversations, 0 reported, 0 waiting, 2 failed" in p and TOO_OLD in p
               for p in check.problems), check.problems


# -- parallel reporters --------------------------------------------------------------------------

@pytest.mark.postgres_only
def test_parallel_reporters_send_each_record_exactly_once(app, stripe, meter_id):
    tenants = [tenant_on(app, included=5) for _ in range(3)]
    customers = [connect(app, stripe, meter_id, t) for t in tenants]
    for tenant_id in tenants:
        meter(app, tenant_id, 30)
    # Slow enough that the reporters overlap.
    stripe.delay("POST", METER_EVENTS, seconds=0.01, times=10_000)
    clock = settled_clock()
    reporters = 4
    barrier = threading.Barrier(reporters)
    runs, errors = [], []

    def work():
        try:
            with app.app_context():
                reporter = make_reporter(clock, batch=5)
                barrier.wait()
                runs.append(reporter.report())
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(reporters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    sent = sent_identifiers(stripe)
    assert len(sent) == len(set(sent)) == 75
    assert sum(run.reported for run in runs) == 75
    assert sum(run.included for run in runs) == 15
    assert sum(1 for run in runs if run.reported) > 1, "one reporter did all the work: nothing ran in parallel"
    with app.app_context():
        rows = records()
        db.session.remove()
    for tenant_id, customer in zip(tenants, customers):
        mine = [r for r in rows if r.tenant_id == tenant_id]
        assert [r.overage for r in mine] == [False] * 5 + [True] * 25
        assert all(r.reported_at is not None for r in mine)
        assert stripe_total(stripe, customer) == 25


# -- the worker and the commands -----------------------------------------------------------------

def test_the_worker_reports_only_when_stripe_is_configured(app, stripe, meter_id):
    tenant_id = tenant_on(app, included=0)
    customer = connect(app, stripe, meter_id, tenant_id)
    meter(app, tenant_id, 2, at=utcnow() - timedelta(minutes=5))
    url = app.config["SQLALCHEMY_DATABASE_URI"]

    without = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "HOUSEKEEPING": True})
    assert "usage report" not in [task[0] for task in without.extensions["background"]._tasks]
    worker = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "HOUSEKEEPING": True,
                         "STRIPE_SECRET_KEY": "sk_test_fake", "STRIPE_API_BASE": stripe.url, "STRIPE_MAX_RETRIES": 0})
    try:
        tasks = {task[0]: task for task in worker.extensions["background"]._tasks}
        assert tasks["usage report"][1] == worker.config["USAGE_REPORT_SECONDS"]
        worker.extensions["background"].run_due_tasks(force=True)
    finally:
        for built in (without, worker):
            with built.app_context():
                db.engine.dispose()
    assert stripe_total(stripe, customer) == 2


@pytest.fixture
def overage_by_sends(app, client, stripe, meter_id, monkeypatch):
    """A starter tenant with 3 included conversations that sent 5, settled."""
    # Sends settle within 1.5x this; the reporter waits 2x: 0.1 s.
    monkeypatch.setitem(app.config, "RECOVER_SENDS_AFTER_SECONDS", 0.05)
    starter = sender(client, "starter")
    with app.app_context():
        set_quota("starter", 3)
    customer = connect(app, stripe, meter_id, starter.tenant_id)
    for n in range(5):
        assert starter.send(to=f"1555123100{n}").status_code == 200
    time.sleep(0.2)
    return starter, customer


def test_report_command_reports_and_says_what_it_did(app, runner, stripe, overage_by_sends):
    waiting = tenant_on(app, included=3)  # the starter plan's, as above
    meter(app, waiting, 2, at=utcnow() - timedelta(minutes=5))

    result = runner.invoke(args=["usage", "report"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == ("Reported 2 overage conversations for 1 tenant; 3 within included "
                                             "amounts; 2 waiting (2 no Stripe customer)")
    assert stripe_total(stripe, overage_by_sends[1]) == 2


def test_report_command_fails_when_every_attempt_failed(app, runner, stripe, overage_by_sends):
    stripe.fail("POST", METER_EVENTS, status=500, times=100)
    result = runner.invoke(args=["usage", "report"])
    assert result.exit_code == 1, result.output
    assert "1 failed: APIError (HTTP 500)" in result.output
    assert "Every attempt failed (1); nothing was reported." in result.output


def test_report_command_without_stripe_says_so(app, runner):
    result = runner.invoke(args=["usage", "report"])
    assert result.exit_code == 1
    assert "Stripe is not configured" in result.output


def test_check_passes_when_everything_is_reported(app, runner, stripe, overage_by_sends):
    assert runner.invoke(args=["usage", "report"]).exit_code == 0
    result = runner.invoke(args=["usage", "check"])
    assert result.exit_code == 0, result.output
    assert "OK: 3 reported overage figures agree with the counters and Stripe." in result.output
    summaries = stripe.requests("GET", "/v1/billing/meters/")
    assert [c.params["customer"] for c in summaries] == [overage_by_sends[1]]


def test_check_lists_a_record_that_failed(app, runner, stripe, overage_by_sends):
    stripe.fail("POST", METER_EVENTS, status=400)
    runner.invoke(args=["usage", "report"])
    result = runner.invoke(args=["usage", "check"])
    assert result.exit_code == 1, result.output
    tenant_id = overage_by_sends[0].tenant_id
    assert f"tenant {tenant_id} period {current_period(None).start:%Y-%m-%d}: 2 overage conversations, 1 reported, " \
           "0 waiting, 1 failed (last error: InvalidRequestError (HTTP 400)" in result.output
    assert "Stripe counts" not in result.output  # Stripe has exactly what was reported


def test_check_prints_the_difference_when_stripes_total_differs(app, runner, stripe, overage_by_sends):
    starter, customer = overage_by_sends
    assert runner.invoke(args=["usage", "report"]).exit_code == 0
    stripe.meter_events.popitem()  # Stripe lost one

    result = runner.invoke(args=["usage", "check"])

    assert result.exit_code == 1, result.output
    assert (f"tenant {starter.tenant_id} period {current_period(None).start:%Y-%m-%d}: Stripe counts 1 overage "
            f"conversations for {customer}, 2 were reported") in result.output


def test_check_lists_overage_still_waiting(app, runner, stripe, overage_by_sends):
    with app.app_context():
        make_reporter(settled_clock()).decide()  # decided, not sent yet
        db.session.remove()
    result = runner.invoke(args=["usage", "check"])
    assert result.exit_code == 1, result.output
    assert "2 overage conversations, 0 reported, 2 waiting, 0 failed" in result.output


def test_check_without_stripe_checks_the_local_side_only(app, runner, client):
    starter = sender(client, "starter")
    with app.app_context():
        set_quota("starter", 1)
    for n in range(3):
        assert starter.send(to=f"1555123200{n}").status_code == 200
    with app.app_context():
        db.session.execute(update(UsageRecord).where(UsageRecord.id > 0)
                           .values(overage=True, reported_at=utcnow()))
        db.session.commit()
        db.session.remove()

    result = runner.invoke(args=["usage", "check"])

    assert result.exit_code == 0, result.output
    assert "Stripe was not compared" in result.output
    assert "OK: 2 reported overage figures agree with the counters." in result.output
