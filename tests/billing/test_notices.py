"""Billing notices: Stripe's signed events email the tenant's owner and billing members, once per event."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from saas.billing.notices import format_amount
from saas.extensions import db
from saas.tenants.models import Tenant, User
from saas.timeutil import from_timestamp
from tests import factories
from tests.billing.test_webhooks import (  # noqa: F401  (prices is a fixture)
    deliver, fail_payment, ledger, pay, prices, state, subscribed,
)
from tests.metering.test_concurrency import THREADS, pg_only, run_in_parallel  # noqa: F401

_HASH = generate_password_hash("unused password", method="pbkdf2:sha256:1")
BILLING_URL = "http://localhost/billing"


class Members:
    """A tenant with one member of every role; ``billing_people`` are the ones notices go to."""

    def __init__(self, name: str, domain: str):
        tenant = factories.make_tenant(name=name, email=f"owner@{domain}")
        self.tenant_id = tenant.id
        self.owner = f"owner@{domain}"
        self.emails = {"owner": self.owner}
        for role in ("admin", "developer", "billing"):
            address = f"{role}@{domain}"
            db.session.add(User(tenant_id=tenant.id, email=address, role=role, password_hash=_HASH))
            self.emails[role] = address
        db.session.commit()
        self.billing_people = sorted([self.owner, self.emails["billing"]])

    @property
    def tenant(self) -> Tenant:
        return db.session.get(Tenant, self.tenant_id)


@pytest.fixture
def acme(ctx):
    return Members("Acme Ltd", "acme.example.com")


@pytest.fixture
def other(ctx):
    return Members("Other Co", "other.example.com")


def settle(app):
    assert app.extensions["background"].join()


def sent(app, mailbox, subject_part: str | None = None):
    settle(app)
    return sorted((m["To"], m["Subject"]) for m in mailbox.messages
                  if subject_part is None or subject_part in m["Subject"])


def body_to(mailbox, address: str, subject_part: str) -> str:
    [message] = mailbox.to(address, subject_part)
    return mailbox.text(message)


# -- each notice ---------------------------------------------------------------------------------------
def test_a_failed_payment_emails_owner_and_billing_members_once(app, client, stripe, prices, mailbox, acme, other):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "pro")
    subscribed(client, stripe, other.tenant, prices, "starter")
    settle(app)
    assert mailbox.messages == []  # a first payment that went through is no news
    updated, failed = fail_payment(stripe, sub_id)
    assert deliver(client, stripe, updated).status_code == 200
    assert deliver(client, stripe, failed).status_code == 200

    subject = "[Acme Ltd] Payment of USD 99.00 failed"
    assert sent(app, mailbox) == [(address, subject) for address in acme.billing_people]
    body = body_to(mailbox, acme.emails["billing"], subject)
    invoice = failed["data"]["object"]
    assert "A payment of USD 99.00 for Acme Ltd's Pro (USD 99.00 a month) plan failed." in body
    assert f"keeps working for {app.config['PAST_DUE_GRACE_DAYS']} days" in body
    assert BILLING_URL in body and invoice["hosted_invoice_url"] in body and invoice["number"] in body

    # Stripe delivers it again: nothing more is sent.
    again = deliver(client, stripe, failed)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert len(sent(app, mailbox)) == 2


def test_a_payment_the_bank_wants_confirmed_emails_the_billing_people(app, client, stripe, prices, mailbox, acme,
                                                                       other):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "starter")
    event = stripe.invoice_event(sub_id, "invoice.payment_action_required")
    assert deliver(client, stripe, event).status_code == 200
    subject = "[Acme Ltd] Your bank asks you to confirm a payment of USD 29.00"
    assert sent(app, mailbox) == [(address, subject) for address in acme.billing_people]
    body = body_to(mailbox, acme.owner, subject)
    assert "confirm the payment of USD 29.00 for Acme Ltd's Starter (USD 29.00 a month) plan" in body
    assert BILLING_URL in body and event["data"]["object"]["hosted_invoice_url"] in body
    deliver(client, stripe, event)
    assert len(sent(app, mailbox)) == 2


def test_a_payment_after_a_failure_says_so_and_an_ordinary_renewal_says_nothing(app, client, stripe, prices,
                                                                                 mailbox, acme):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "pro")
    for event in fail_payment(stripe, sub_id):
        deliver(client, stripe, event)
    settle(app)
    mailbox.reset()
    # Stripe's own order: the subscription's news first, then the invoice's.
    updated, paid = pay(stripe, sub_id)
    deliver(client, stripe, updated)
    assert deliver(client, stripe, paid).status_code == 200
    assert state(acme.tenant_id).status == "active"
    subject = "[Acme Ltd] Payment of USD 99.00 received"
    assert sent(app, mailbox) == [(address, subject) for address in acme.billing_people]
    body = body_to(mailbox, acme.owner, subject)
    assert "went through after an earlier attempt failed" in body and BILLING_URL in body
    assert "the Pro plan's limits apply again in full" in body
    deliver(client, stripe, paid)
    # The next month's renewal is no news.
    for event in pay(stripe, sub_id):
        deliver(client, stripe, event)
    assert len(sent(app, mailbox)) == 2


def test_a_canceled_subscription_emails_the_billing_people(app, client, stripe, prices, mailbox, acme, other):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "pro")
    event = stripe.subscription_event(sub_id, "customer.subscription.deleted", status="canceled")
    assert deliver(client, stripe, event).status_code == 200
    subject = "[Acme Ltd] The Pro subscription is canceled"
    assert sent(app, mailbox) == [(address, subject) for address in acme.billing_people]
    body = body_to(mailbox, acme.emails["billing"], subject)
    assert "Acme Ltd's Pro (USD 99.00 a month) subscription is canceled" in body
    assert "Free plan's limits" in body and BILLING_URL in body
    deliver(client, stripe, event)
    assert len(sent(app, mailbox)) == 2


def test_an_ending_trial_says_when_and_what_will_be_charged(app, client, stripe, prices, mailbox, acme):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "pro", trial_days=14)
    event = stripe.subscription_event(sub_id, "customer.subscription.trial_will_end")
    assert deliver(client, stripe, event).status_code == 200
    ends = f"{from_timestamp(stripe.get(sub_id)['trial_end']):%Y-%m-%d}"
    subject = f"[Acme Ltd] The Pro trial ends on {ends}"
    assert sent(app, mailbox) == [(address, subject) for address in acme.billing_people]
    body = body_to(mailbox, acme.owner, subject)
    assert "the card on file is charged USD 99.00 for the Pro plan" in body and BILLING_URL in body
    deliver(client, stripe, event)
    assert len(sent(app, mailbox)) == 2


# -- isolation, failures, races -------------------------------------------------------------------------
def test_a_tenants_notice_never_reaches_another_tenants_members(app, client, stripe, prices, mailbox, acme, other):
    acme_sub = subscribed(client, stripe, acme.tenant, prices, "pro")
    other_sub = subscribed(client, stripe, other.tenant, prices, "pro")
    deliver(client, stripe, stripe.invoice_event(other_sub, "invoice.payment_failed"))
    deliver(client, stripe, stripe.subscription_event(acme_sub, "customer.subscription.deleted", status="canceled"))
    assert sent(app, mailbox, "[Other Co]") == [(a, "[Other Co] Payment of USD 99.00 failed")
                                                for a in other.billing_people]
    assert sent(app, mailbox, "[Acme Ltd]") == [(a, "[Acme Ltd] The Pro subscription is canceled")
                                                for a in acme.billing_people]
    assert {m["To"] for m in mailbox.messages} == set(acme.billing_people) | set(other.billing_people)


def test_an_unreachable_mail_server_neither_fails_the_webhook_nor_undoes_the_billing_state(
        app, client, stripe, prices, mailbox, acme, caplog):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "pro")
    _, failed = fail_payment(stripe, sub_id)
    tries = app.config["MAIL_RETRIES"] + 1
    mailbox.fail_next(tries * 2)  # every attempt for both recipients
    with caplog.at_level(logging.WARNING, logger="saas.mail"):
        response = deliver(client, stripe, failed)
        settle(app)
    assert response.status_code == 200
    assert state(acme.tenant_id).status == "past_due" and ledger(failed["id"]).processed_at is not None
    assert mailbox.messages == [] and mailbox.sink.attempts == tries * 2
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert sorted(dropped) == sorted(f"email to {a} ([Acme Ltd] Payment of USD 99.00 failed) dropped after {tries} "
                                     "attempts" for a in acme.billing_people)
    # Stripe's retry of the same event (it got its 200, but say it retried) sends nothing either.
    assert deliver(client, stripe, failed).get_json()["duplicate"] is True
    settle(app)
    assert mailbox.messages == []


@pytest.mark.postgres_only
def test_concurrent_deliveries_of_one_event_send_one_notice(pg_only, app, client, stripe, prices, mailbox):
    with app.app_context():
        acme = Members("Acme Ltd", "acme.example.com")
        sub_id = subscribed(client, stripe, acme.tenant, prices, "pro")
        _, failed = fail_payment(stripe, sub_id)
        body, headers = stripe.signed(failed)
        db.session.remove()
    stripe.delay("GET", f"/v1/subscriptions/{sub_id}", seconds=1)
    answers = run_in_parallel(app, [lambda c: c.post("/webhooks/stripe", data=body, headers=headers)] * THREADS)
    assert sorted(a.status_code for a in answers) == [200] + [409] * (THREADS - 1)
    again = client.post("/webhooks/stripe", data=body, headers=headers)
    assert again.get_json()["duplicate"] is True
    assert sent(app, mailbox) == [(a, "[Acme Ltd] Payment of USD 99.00 failed") for a in acme.billing_people]


def test_a_removed_member_gets_no_notice(app, client, stripe, prices, mailbox, acme):
    sub_id = subscribed(client, stripe, acme.tenant, prices, "pro")
    billing = db.session.scalar(select(User).where(User.email == acme.emails["billing"]))
    billing.tenant_id = None  # what removing a member leaves
    db.session.commit()
    deliver(client, stripe, stripe.invoice_event(sub_id, "invoice.payment_failed"))
    assert [to for to, _ in sent(app, mailbox)] == [acme.owner]


@pytest.mark.parametrize("minor, currency, text", [
    (9900, "usd", "USD 99.00"), (123456789, "eur", "EUR 1,234,567.89"), (5000, "jpy", "JPY 5,000"),
    (1500, "kwd", "KWD 1.500"), (0, "gbp", "GBP 0.00"), (None, "usd", "USD 0.00"),
])
def test_amounts_are_stripes_minor_units_in_their_currency(minor, currency, text):
    assert format_amount(minor, currency) == text
