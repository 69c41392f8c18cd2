"""A message WhatsApp accepted and then reports failed is not billed, once, and `flask usage check` agrees.

The rule (README, "Metering"): a ``failed`` status un-bills the message; its conversation too, unless
another message that went out stands in its window or the conversation was already decided for
Stripe. Statuses never move backwards, so a failed after delivered or read changes nothing.
Live sends through the loopback Graph API, statuses through the signed WhatsApp webhook.
"""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from saas.billing.services import subscription_for
from saas.extensions import db
from saas.metering.reporting import UsageReporter
from saas.tenants.models import Tenant
from tests import whatsapp_payloads as wa
from tests.factories import usage_values
from tests.messaging.live import BILLED_ONCE, CONTACT, live_number_with
from tests.webhooks.test_whatsapp_inbound import deliver, message, whatsapp  # noqa: F401


@pytest.fixture
def number(app, graph, acme):
    """acme's live number as WhatsApp's webhooks name it, with CONTACT's window open."""
    phone_number_id, _, waba_id, _ = live_number_with(app, graph, acme.tenant_id)
    return SimpleNamespace(phone_number_id=phone_number_id, waba_id=waba_id, display_number="+1 555-020-0000")


def billed(app, tenant_id) -> dict:
    return {k: v for k, v in usage_values(app, tenant_id).items() if v}


def send(acme, number, to=CONTACT) -> str:
    response = acme.send(number=number.phone_number_id, to=to)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"][0]["id"]


def status(app, client, number, item) -> None:
    deliver(app, client, wa.notification(number.waba_id, ("messages", wa.messages_value(number, statuses=[item]))))


def check(runner):
    result = runner.invoke(args=["usage", "check"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_message_whatsapp_reports_failed_is_not_billed_and_the_usage_check_agrees(
        whatsapp, client, runner, graph, acme, number):
    wamid = send(acme, number)
    status(whatsapp, client, number, wa.status(wamid, "sent", recipient=CONTACT))
    assert billed(whatsapp, acme.tenant_id) == BILLED_ONCE

    status(whatsapp, client, number, wa.failed(wamid, code=131049, recipient=CONTACT))
    assert (message(whatsapp, wamid).status, message(whatsapp, wamid).error_code) == ("failed", 131049)
    assert billed(whatsapp, acme.tenant_id) == {}
    assert "OK:" in check(runner)


def test_a_failed_status_twice_and_out_of_order_un_bills_once(whatsapp, client, runner, graph, acme, number):
    wamid = send(acme, number)
    failed = wa.failed(wamid, recipient=CONTACT)
    status(whatsapp, client, number, failed)
    status(whatsapp, client, number, dict(failed, timestamp=wa.now_ts(5)))  # WhatsApp repeating itself
    status(whatsapp, client, number, wa.status(wamid, "sent", recipient=CONTACT))  # late news
    assert message(whatsapp, wamid).status == "failed"
    assert usage_values(whatsapp, acme.tenant_id) == {"messages": 0, "conversations": 0, "conversations.service": 0}
    check(runner)


def test_a_failed_status_after_delivered_changes_nothing(whatsapp, client, runner, graph, acme, number):
    wamid = send(acme, number)
    status(whatsapp, client, number, wa.status(wamid, "delivered", recipient=CONTACT))
    status(whatsapp, client, number, wa.failed(wamid, recipient=CONTACT))
    assert message(whatsapp, wamid).status == "delivered"
    assert billed(whatsapp, acme.tenant_id) == BILLED_ONCE
    check(runner)


def test_a_failed_message_leaves_the_conversation_billed_when_another_message_used_its_window(
        whatsapp, client, runner, graph, acme, number):
    first, second = send(acme, number), send(acme, number)
    assert billed(whatsapp, acme.tenant_id) == {**BILLED_ONCE, "messages": 2}
    status(whatsapp, client, number, wa.failed(first, recipient=CONTACT))
    assert billed(whatsapp, acme.tenant_id) == BILLED_ONCE
    assert message(whatsapp, second).conversation_id == message(whatsapp, first).conversation_id
    check(runner)
    # Once the other fails too, nothing in the window went out: the conversation goes as well.
    status(whatsapp, client, number, wa.failed(second, recipient=CONTACT))
    assert billed(whatsapp, acme.tenant_id) == {}
    check(runner)


def test_a_conversation_already_decided_for_stripe_stays_billed(whatsapp, client, runner, graph, acme, number):
    wamid = send(acme, number)
    with whatsapp.app_context():
        # A tenant billed through Stripe, as checkout leaves it.
        tenant = db.session.get(Tenant, acme.tenant_id)
        tenant.stripe_customer_id = "cus_failedstatus"
        subscription_for(tenant).stripe_subscription_id = "sub_failedstatus"
        db.session.commit()
        # The reporter decides the conversation (within the plan's included amount): it is Stripe's now.
        assert UsageReporter.from_config(whatsapp.config, client=None, settle_after=timedelta(0)).decide().included == 1
        db.session.remove()
    status(whatsapp, client, number, wa.failed(wamid, recipient=CONTACT))
    assert billed(whatsapp, acme.tenant_id) == {"conversations": 1, "conversations.service": 1}
    check(runner)
