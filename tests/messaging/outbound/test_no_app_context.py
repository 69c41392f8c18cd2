"""The send service runs with no app context: a send and a batch from a plain thread reach only their
collaborators (billing's rights reader among them, and metering's), and still see a plan change as soon
as it commits."""
from __future__ import annotations

import threading
from collections import defaultdict
from datetime import timedelta

import pytest
from flask import has_app_context, has_request_context
from sqlalchemy import select

from saas import cache
from saas.billing import entitlements
from saas.billing.entitlements import Rights
from saas.billing.standing import PastDueGrace
from saas.database import end_transaction
from saas.errors import PaymentRequired
from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.numbers.phone_numbers import SendingNumbers
from saas.messaging.outbound import send_service
from saas.messaging.outbound.accounts import AccountState
from saas.messaging.outbound.payloads import outbound
from saas.messaging.outbound.transports import SandboxTransport
from saas.tenants.services import tenant_snapshot
from saas.timeutil import month_start, utcnow
from tests.admin.test_tenants import set_subscription
from tests.factories import sender, service_with, usage_values
from tests.messaging.live import CONTACT, text_payload

INTERACTIVE = {"messaging_product": "whatsapp", "to": CONTACT, "type": "interactive",
               "interactive": {"type": "button", "body": {"text": "Pick"},
                               "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}


class Contexts:
    """What each collaborator saw when it was called: whether an app context was pushed, per call."""

    def __init__(self):
        self.seen = defaultdict(list)

    def note(self, who: str) -> None:
        self.seen[who].append(has_app_context())

    def assert_none_seen(self, *who: str) -> None:
        assert set(who) <= set(self.seen), f"never called: {set(who) - set(self.seen)}"
        assert {name: any(calls) for name, calls in self.seen.items()} == {name: False for name in self.seen}


class WatchedCaches(cache.Caches):
    """The app's own snapshot caches, noting every time one is asked for."""

    def __init__(self, app, contexts: Contexts):
        super().__init__(app)
        self.contexts = contexts

    def __call__(self, name: str):
        self.contexts.note("caches")
        return super().__call__(name)


def watched_service(app, contexts: Contexts):
    """The app's send service, rebuilt around collaborators that note whether an app context is pushed
    when they are called: the sandbox transport (its latency's ``sleep``, which waits for nothing), the
    clock, and the snapshot caches that billing's rights reader, the numbers and the account state read
    through."""
    def clock():
        contexts.note("clock")
        return utcnow()

    with app.app_context():
        app_service = send_service(app)
        session = app_service.session
        caches = WatchedCaches(app, contexts)
        service = service_with(
            SandboxTransport(latency=0.001, sleep=lambda seconds: contexts.note("transport")),
            clock=clock, metering=app_service.metering, numbers=SendingNumbers(session, caches),
            accounts=AccountState(Rights(session, caches, app.config), session, caches))
    return service


def in_a_plain_thread(work):
    """``work()`` in a thread of its own with no app and no request context (a worker's): its result, or
    what it raised."""
    outcome = {}

    def run():
        assert not has_app_context() and not has_request_context()
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["raised"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "raised" in outcome:
        raise outcome["raised"]
    return outcome["result"]


def snapshot_of(app, tenant_id):
    with app.app_context():
        tenant = tenant_snapshot(tenant_id)
        db.session.remove()
    return tenant


def periods_of(app, message_ids) -> list:
    with app.app_context():
        periods = db.session.scalars(select(Message.period_start).where(Message.id.in_(message_ids))
                                     .order_by(Message.id)).all()
        db.session.remove()
    return periods


def test_a_send_and_a_batch_from_a_plain_thread_push_no_app_context(app, client):
    acme = sender(client, "pro")
    tenant = snapshot_of(app, acme.tenant_id)
    contexts = Contexts()
    service = watched_service(app, contexts)
    # Plans, subscriptions, tenants and numbers are read in the thread itself, not from earlier reads.
    cache.clear_all()

    def work():
        one = service.send(tenant, service.accounts.rights(tenant), acme.number, outbound(INTERACTIVE).payload)
        many = service.send_many(tenant, acme.number, [text_payload(f"1555000{n:04d}") for n in range(3)])
        return one, many

    one, many = in_a_plain_thread(work)

    assert one.wa_message_id.startswith("wamid.") and [r.accepted for r in many] == [True, True, True]
    contexts.assert_none_seen("transport", "clock", "caches")
    assert len(contexts.seen["transport"]) == 4
    assert usage_values(app, acme.tenant_id) == {"messages": 4, "conversations": 4, "conversations.service": 4}


def test_the_apps_own_rights_readers_answer_in_a_plain_thread_as_in_a_request(app, client):
    acme = sender(client, "pro")
    tenant = snapshot_of(app, acme.tenant_id)
    with app.app_context():
        in_app = entitlements.for_tenant(tenant)
        db.session.remove()
    cache.clear_all()
    app_service = send_service(app)

    def work():
        rights = app_service.accounts.rights(tenant)
        # Its reads began a transaction of the thread's own session: it is over (no SQLite write lock held).
        assert not app_service.session.registry().in_transaction()
        # As metering asks for a send priced without rights: in the send's transaction (ended here).
        try:
            return rights, app_service.metering.rights_of(acme.tenant_id)
        finally:
            end_transaction(app_service.session)

    # The send service's account state, and the metering port's rights.
    rights, metered = in_a_plain_thread(work)

    assert rights == metered == in_app and rights.effective.code == "pro"
    assert rights.grace == in_app.grace == PastDueGrace(app.config["PAST_DUE_GRACE_DAYS"])


def test_sends_from_a_plain_thread_see_the_subscription_fall_past_due_beyond_its_grace(app, client):
    acme = sender(client, "pro")
    tenant = snapshot_of(app, acme.tenant_id)
    service = watched_service(app, Contexts())
    now = utcnow().replace(microsecond=0)
    stripe_period = {"current_period_start": now - timedelta(hours=1, minutes=7),
                     "current_period_end": now + timedelta(days=29)}
    grace = timedelta(days=app.config["PAST_DUE_GRACE_DAYS"])

    # Past due within its grace: Pro's rights, and Stripe's period (judged by the same grace).
    set_subscription(app, acme.tenant_id, status="past_due", past_due_since=now - timedelta(hours=1),
                     **stripe_period)
    within = in_a_plain_thread(lambda: service.send(tenant, service.accounts.rights(tenant), acme.number,
                                                    outbound(INTERACTIVE).payload))
    batch_within = in_a_plain_thread(lambda: service.send_many(tenant, acme.number, [INTERACTIVE]))
    assert batch_within[0].accepted
    assert periods_of(app, [within.message_id, batch_within[0].message_id]) == [
        stripe_period["current_period_start"]] * 2 != [month_start(now)] * 2

    # The grace runs out (committed elsewhere, as Stripe's webhook would): the free plan's rights and the
    # calendar month, at the thread's next send; what Pro would allow is refused as a payment matter.
    set_subscription(app, acme.tenant_id, past_due_since=now - grace - timedelta(hours=1))

    def after_grace():
        rights = service.accounts.rights(tenant)
        with pytest.raises(PaymentRequired) as refused:
            service.send(tenant, rights, acme.number, outbound(INTERACTIVE).payload)
        return rights, refused.value, service.send_many(tenant, acme.number,
                                                        [INTERACTIVE, text_payload("15551230077")])

    rights, single, (interactive, text) = in_a_plain_thread(after_grace)
    assert (rights.plan.code, rights.effective.code, rights.status) == ("pro", "free", "past_due")
    assert single.details["effective_plan"] == "free" and single.details["feature"] == "interactive"
    assert isinstance(interactive.error, PaymentRequired) and not interactive.accepted
    assert text.accepted and periods_of(app, [text.message_id]) == [month_start(now)]
