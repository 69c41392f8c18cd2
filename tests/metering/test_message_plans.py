"""Plans that price messages of given categories instead of conversations, end to end.

The rules (saas.billing.pricing): each message of a priced category is one
billable unit with one usage record, in an open window or not; messages of
other categories are free and count against nothing. The included messages go
first; then a hard cap refuses the next priced message, or each one past them
is overage reported to Stripe's meter. A send that did not go out gives its
message back, unless Stripe already has it.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from saas.billing import stripe_client
from saas.billing.models import Plan
from saas.errors import UpstreamError
from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.outbound import send_service
from saas.messaging.inbound.statuses import apply_status
from saas.metering.reconciliation import reconcile
from saas.metering.reporting import UsageReporter
from saas.timeutil import utcnow
from tests.factories import call_send, sender, service_with, set_quota, usage_values
from tests.metering.test_concurrency import counter_values, pg_only, run_in_parallel  # noqa: F401
from tests.metering.test_failures import (
    CRASHES, FAILING, assert_usage_equals_rows, crashing_service, race_sixteen_sends, two_phase,
)
from tests.metering.test_reporting import (  # noqa: F401
    EVENTS, MESSAGES_EVENT, METER_EVENTS, SETTLE, connect, make_reporter, messages_meter_id, meter_id, records,
    settled_clock, stripe_total,
)


def message_plan(app, code: str = "bulk", *, included: int = 2, categories=("marketing", "utility"),
                 overage: Decimal | None = None) -> None:
    """A plan on sale that prices messages of ``categories``, ``included`` of them per period. Its tenants manage
    consent themselves: these tests are about pricing, and only an opt-out would refuse their marketing sends
    (tests/contacts/consent proves the consent rules)."""
    with app.app_context():
        db.session.add(Plan(code=code, name=code.title(), price_cents=4900, currency="usd", interval="month",
                            billing_unit="messages", included_messages=included, message_categories=list(categories),
                            overage_cents=overage, rate_limit_per_minute=1000, phone_numbers_allowed=1,
                            features=["text", "template"], active=True, consent_managed_by_tenant=True))
        db.session.commit()
        db.session.remove()


def template(name: str, to: str) -> dict:
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": "en_US"}}}


MARKETING = "seasonal_promotion"
UTILITY = "order_update"


def usage(api) -> dict:
    return api.get("/api/v1/usage").get_json()


def message_ids(app, tenant_id) -> list[int]:
    with app.app_context():
        ids = db.session.scalars(select(Message.id).where(Message.tenant_id == tenant_id).order_by(Message.id)).all()
        db.session.remove()
    return ids


def billed_units(app, tenant_id) -> list[tuple]:
    with app.app_context():
        rows = [(r.metric, r.subject, r.voided_at is not None) for r in records(tenant_id)]
        db.session.remove()
    return rows


def test_included_messages_then_the_hard_cap_refuses_the_next_priced_one(app, client):
    message_plan(app, included=2)
    bulk = sender(client, "bulk")
    assert bulk.send(to="15551230001").status_code == 200  # a service message: free
    assert bulk.send(payload=template(MARKETING, "15551230001")).status_code == 200
    # The same marketing window: a conversation plan would bill nothing more, a message plan one message.
    assert bulk.send(payload=template(MARKETING, "15551230001")).status_code == 200

    refused = bulk.send(payload=template(UTILITY, "15551230002"))

    assert refused.status_code == 402
    error = refused.get_json()["error"]
    assert error["reason"] == "quota_exceeded" and error["upgrade_url"].endswith("/billing")
    assert error["details"] == {"quota": 2, "used": 2, "metric": "messages"}
    assert bulk.send(to="15551230001", body="service still goes at the cap").status_code == 200
    current = usage(bulk)
    assert (current["metric"], current["quota"], current["used"], current["remaining"], current["messages"]) == (
        "messages", 2, 2, 0, 4)
    assert current["by_category"] == {"marketing": 2, "utility": 0, "authentication": 0, "service": 0}
    ids = message_ids(app, bulk.tenant_id)
    assert billed_units(app, bulk.tenant_id) == [("messages.marketing", f"message:{ids[1]}", False),
                                                 ("messages.marketing", f"message:{ids[2]}", False)]
    # Windows are not what this plan prices: none is counted or billed.
    assert "conversations" not in usage_values(app, bulk.tenant_id)
    assert_usage_equals_rows(app)


def test_each_priced_message_past_the_included_ones_is_overage_reported_to_the_messages_meter(
        app, client, stripe, meter_id, messages_meter_id):
    message_plan(app, included=1, overage=Decimal("0.8"))
    bulk = sender(client, "bulk")
    customer = connect(app, stripe, messages_meter_id, bulk.tenant_id)
    assert bulk.send(to="15551230001").status_code == 200  # free
    for to in ("15551230001", "15551230001", "15551230002"):
        assert bulk.send(payload=template(MARKETING, to)).status_code == 200
    assert usage(bulk)["overage"] == 2

    with app.app_context():
        run = make_reporter(settled_clock()).report()
        rows = records(bulk.tenant_id)
        check = reconcile(db.session, stripe_client.client(), event_names=EVENTS, now=utcnow() + timedelta(minutes=2))
        db.session.remove()

    assert (run.included, run.reported, run.failed) == (1, 2, 0)
    assert [(r.metric, r.overage) for r in rows] == [("messages.marketing", False), ("messages.marketing", True),
                                                     ("messages.marketing", True)]
    calls = stripe.requests("POST", METER_EVENTS)
    assert [call.params["identifier"] for call in calls] == [r.identifier for r in rows[1:]]
    assert {call.params["event_name"] for call in calls} == {MESSAGES_EVENT}
    assert all(call.params["payload"] == {"stripe_customer_id": customer, "value": "1"} for call in calls)
    assert stripe_total(stripe, customer) == 2
    # Two local figures, then each meter: the messages meter has both, the conversations meter none.
    assert (check.problems, check.checked) == ([], 4)
    assert [c.path for c in stripe.requests("GET", "/v1/billing/meters/")] == [
        f"/v1/billing/meters/{meter_id}/event_summaries", f"/v1/billing/meters/{messages_meter_id}/event_summaries"]


def test_service_messages_priced_in_one_statement_are_billed_per_message(app, client):
    """On PostgreSQL a send no quota can refuse is metered in the send's one statement: same units, same records."""
    message_plan(app, "replies", included=0, categories=("service",), overage=Decimal("0.2"))
    replies = sender(client, "replies")
    for n in range(3):
        assert replies.send(to="15551230001", body=f"reply {n}").status_code == 200
    ids = message_ids(app, replies.tenant_id)
    assert billed_units(app, replies.tenant_id) == [("messages.service", f"message:{i}", False) for i in ids]
    assert usage_values(app, replies.tenant_id) == {"messages": 3, "messages.service": 3}
    assert_usage_equals_rows(app)


def test_a_refused_send_gives_its_message_back(app, client):
    message_plan(app, included=1)
    bulk = sender(client, "bulk")
    with app.app_context():
        service = service_with(two_phase())
        with pytest.raises(UpstreamError):
            call_send(service, bulk, template(MARKETING, FAILING))  # metered, then WhatsApp refuses it
        db.session.remove()
    assert usage(bulk)["used"] == 0
    [refused_id] = message_ids(app, bulk.tenant_id)
    assert billed_units(app, bulk.tenant_id) == [("messages.marketing", f"message:{refused_id}", True)]
    assert bulk.send(payload=template(MARKETING, "15551230001")).status_code == 200  # the unit is free again
    assert bulk.send(payload=template(MARKETING, "15551230002")).status_code == 402
    assert_usage_equals_rows(app)


def sent_and_accepted(app, bulk, to: str) -> str:
    """A priced message WhatsApp accepted (no status walk after it); its WhatsApp id."""
    with app.app_context():
        outcome = call_send(service_with(two_phase()), bulk, template(MARKETING, to))
        db.session.remove()
    return outcome.wa_message_id


def fail(app, tenant_id, wamid) -> None:
    with app.app_context():
        assert apply_status(tenant_id, wamid, "failed", utcnow(), error_code=131049, error_title="Not delivered")
        db.session.remove()


def test_a_failed_status_gives_the_message_back_unless_stripe_has_it(app, client):
    message_plan(app, included=2)
    bulk = sender(client, "bulk")
    decided = sent_and_accepted(app, bulk, "15551230001")
    with app.app_context():
        # The reporter decides it (within the included messages): it is Stripe's now.
        reporter = UsageReporter(None, event_names=EVENTS, settle_after=SETTLE, clock=settled_clock())
        assert reporter.decide().included == 1
        db.session.remove()
    given_back = sent_and_accepted(app, bulk, "15551230002")
    assert usage(bulk)["used"] == 2

    fail(app, bulk.tenant_id, given_back)
    fail(app, bulk.tenant_id, decided)

    assert usage(bulk)["used"] == 1  # the decided one stays billed
    assert [voided for _, _, voided in billed_units(app, bulk.tenant_id)] == [False, True]
    assert bulk.send(payload=template(MARKETING, "15551230003")).status_code == 200
    assert bulk.send(payload=template(MARKETING, "15551230004")).status_code == 402
    assert_usage_equals_rows(app)


def test_a_lapsed_message_plan_says_payment_required_where_it_would_have_allowed_the_send(app, client):
    from tests.billing.test_checkout import set_status

    message_plan(app, included=5, categories=("marketing",))
    bulk = sender(client, "bulk")
    with app.app_context():
        set_quota("free", 1)
    set_status(app, bulk.tenant_id, "canceled")  # the free plan's rights: one conversation
    assert bulk.send(to="15551230001").status_code == 200

    refused = bulk.send(to="15551230002")

    # Under the plan paid for, a service message is free: a payment would let it go.
    assert refused.status_code == 402
    error = refused.get_json()["error"]
    assert error["reason"] == "payment_required" and "past the free plan's quota" in error["message"]
    assert error["details"] == {**error["details"], "plan": "bulk", "effective_plan": "free", "quota": 1, "used": 1}


# -- concurrency and crashes (the same guarantees as for conversations) ---------------------------

def text_to(replies, to, key=None):
    headers = {**replies.headers, **({"Idempotency-Key": key} if key else {})}
    return lambda c: c.post(f"/v23.0/{replies.number}/messages", headers=headers, json={
        "messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hi"}}).status_code


def test_parallel_priced_messages_never_pass_the_hard_cap(pg_only, app, client):
    message_plan(app, "replies", included=20, categories=("service",))
    replies = sender(client, "replies")
    statuses = run_in_parallel(app, [text_to(replies, f"1555600{n:04d}") for n in range(64)])
    assert statuses.count(200) == 20 and statuses.count(402) == 44, statuses
    values = counter_values(app, replies.tenant_id)
    assert values["messages"] == values["messages.service"] == 20
    assert len(billed_units(app, replies.tenant_id)) == 20
    assert_usage_equals_rows(app)


@pytest.mark.parametrize("overage", [None, Decimal("0.2")], ids=["hard cap", "overage"])
def test_parallel_retries_of_one_priced_message_meter_it_once(pg_only, app, client, overage):
    message_plan(app, "replies", included=5, categories=("service",), overage=overage)
    replies = sender(client, "replies")
    statuses = run_in_parallel(app, [text_to(replies, "15556010001", key="once")] * 16)
    assert 200 in statuses and set(statuses) <= {200, 409}, statuses
    values = counter_values(app, replies.tenant_id)
    assert values["messages"] == values["messages.service"] == 1
    assert len(billed_units(app, replies.tenant_id)) == 1
    assert_usage_equals_rows(app)


@pytest.mark.parametrize("step", list(CRASHES))
def test_a_crash_at_any_step_bills_a_priced_message_once_or_not_at_all(app, client, step):
    message_plan(app, "replies", included=0, categories=("service",), overage=Decimal("0.2"))
    replies = sender(client, "replies")
    assert replies.send(to="15551230001").status_code == 200
    with app.app_context():
        service, raised, went_out = crashing_service(step)
        payload = {"messaging_product": "whatsapp", "to": "15551230002", "type": "text", "text": {"body": "crash"}}
        if raised is None:
            assert call_send(service, replies, payload).wa_message_id
        else:
            with pytest.raises(raised):
                call_send(service, replies, payload)
        db.session.remove()
    with app.app_context():
        send_service(app).recover_interrupted(older_than=timedelta(0))
        db.session.remove()
    assert_usage_equals_rows(app)
    assert usage_values(app, replies.tenant_id)["messages.service"] == 1 + went_out
    assert [voided for _, _, voided in billed_units(app, replies.tenant_id)].count(False) == 1 + went_out


def test_capped_priced_messages_stay_exact_when_counting_is_slow(pg_only, app, client):
    message_plan(app, "replies", included=5, categories=("service",))
    replies = sender(client, "replies")
    outcomes = race_sixteen_sends(app, replies, "1555700")
    assert outcomes.count("sent") == 5 and outcomes.count("refused") == 11
    assert counter_values(app, replies.tenant_id)["messages.service"] == 5
    assert_usage_equals_rows(app)
