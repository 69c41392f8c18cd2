"""Billing notices: the emails a tenant's billing people get when Stripe says something they must know.

A payment failed, the bank asks the customer to confirm one, a failed payment went through after all,
the subscription is canceled, a trial ends soon. Each goes to the tenant's members who manage billing
(owner and billing roles; never developers, never another tenant's members).

Once per Stripe event: ``after_applied`` is called only by the delivery that applied the event, after
the ledger row saying so is committed (saas.billing.webhooks._apply), so a repeated or concurrent
delivery, which applies nothing, sends nothing. Never inside the billing transaction, and never able
to undo it: a notice that cannot be written is logged, and the webhook is still answered 200. The
emails go through the mail queue (saas.mail.send_mail), which retries a failed SMTP delivery
MAIL_RETRIES times with backoff and then logs it and drops it; the billing page shows the same state,
so nothing is lost but the nudge.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app, has_request_context
from sqlalchemy import select

from saas.billing.models import StripeEvent, Subscription
from saas.billing.standing import PastDueGrace
from saas.extensions import db
from saas.mail import send_mail
from saas.tenants.models import ROLE_BILLING, ROLE_OWNER, Tenant, User
from saas.text import inert
from saas.timeutil import from_timestamp

log = logging.getLogger(__name__)

RECIPIENT_ROLES = (ROLE_OWNER, ROLE_BILLING)
# Stripe's amounts are integers in the currency's smallest unit; these currencies have none, or three.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
FAILURE_NEWS = ("invoice.payment_failed", "invoice.paid")


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str


def format_amount(minor: int | None, currency: str | None) -> str:
    """Stripe's integer minor units as "USD 99.00" (JPY 5000 as "JPY 5,000")."""
    code = (currency or "").lower()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    value = (minor or 0) / (10 ** places)
    return f"{code.upper()} {value:,.{places}f}".strip()


def recipients(tenant_id: int) -> list[str]:
    """The addresses of the tenant's members who manage billing (owner and billing roles)."""
    return list(db.session.scalars(select(User.email).where(User.tenant_id == tenant_id,
                                                            User.role.in_(RECIPIENT_ROLES)).order_by(User.id)))


def after_applied(event: dict, tenant_id: int | None) -> None:
    """Email the notice ``event`` calls for, if any, to the tenant's billing people. Never raises.

    Call only once the event's ledger row is committed as processed by this delivery.
    """
    if tenant_id is None or event.get("type") not in BUILDERS:
        return
    try:
        if has_request_context():
            _send(event, tenant_id)
        else:  # the resync command: links need a request context, and their base is PUBLIC_BASE_URL anyway
            with current_app.test_request_context("/"):
                _send(event, tenant_id)
    except Exception:
        # The billing state is committed and Stripe must get its 200: a notice that failed is only logged.
        log.exception("billing notice for stripe event %s (%s) not sent", event.get("id"), event.get("type"))
    finally:
        db.session.rollback()


def _send(event: dict, tenant_id: int) -> None:
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        return
    notice = BUILDERS[event["type"]](event, event["data"]["object"], tenant)
    if notice is None:
        return
    addresses = recipients(tenant_id)
    for address in addresses:
        send_mail(address, notice.subject, notice.text)
    log.info("billing notice for stripe event %s (%s) to %d member(s)", event["id"], event["type"], len(addresses))


# -- what each notice says -----------------------------------------------------------------------------
def _name(tenant: Tenant) -> str:
    # A subject is one line: nothing in a tenant's name may break it.
    return " ".join(inert(tenant.name).split())[:100]


def _held(tenant: Tenant) -> Subscription | None:
    return db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))


def _plan_line(tenant: Tenant) -> tuple[str, str]:
    """(plan name, "Pro (USD 99.00 a month)") from the tenant's subscription."""
    subscription = _held(tenant)
    if subscription is None:
        return "your", "your plan"
    plan = subscription.plan
    return plan.name, f"{plan.name} ({format_amount(plan.price_cents, plan.currency)} a {plan.interval})"


def _billing_link() -> str:
    from saas.urls import public_url

    return public_url("portal.billing.index")


def _footer(tenant: Tenant) -> str:
    return (f"\nYou receive this because you manage billing for {_name(tenant)} on Relay "
            "(owner or billing role).\n")


def _invoice_lines(invoice: dict) -> str:
    lines = []
    if invoice.get("number"):
        lines.append(f"Invoice: {invoice['number']}")
    if invoice.get("hosted_invoice_url"):
        lines.append(f"Stripe's page for this invoice: {invoice['hosted_invoice_url']}")
    return "\n".join(lines) + ("\n" if lines else "")


def payment_failed(event: dict, invoice: dict, tenant: Tenant) -> Notice | None:
    if _settled_since(event, tenant):
        return None  # a newer payment already went through: the failure is old news
    amount = format_amount(invoice.get("amount_due"), invoice.get("currency"))
    plan, plan_line = _plan_line(tenant)
    grace = PastDueGrace.configured().days
    return Notice(
        f"[{_name(tenant)}] Payment of {amount} failed",
        f"Hello,\n\nA payment of {amount} for {_name(tenant)}'s {plan_line} plan failed.\n\n"
        f"Stripe retries the payment over the next days. Meanwhile the {plan} plan keeps working for "
        f"{grace} days; after that, the account has the Free plan's limits until the payment goes through.\n\n"
        f"Update the card or pay the invoice from the billing page:\n{_billing_link()}\n\n"
        f"{_invoice_lines(invoice)}{_footer(tenant)}")


def payment_action_required(event: dict, invoice: dict, tenant: Tenant) -> Notice | None:
    if _settled_since(event, tenant):
        return None
    amount = format_amount(invoice.get("amount_due"), invoice.get("currency"))
    _, plan_line = _plan_line(tenant)
    return Notice(
        f"[{_name(tenant)}] Your bank asks you to confirm a payment of {amount}",
        f"Hello,\n\nThe bank asks you to confirm the payment of {amount} for {_name(tenant)}'s {plan_line} "
        "plan (3-D Secure or a similar check). Until it is confirmed, the payment is not made.\n\n"
        f"Confirm it from the billing page:\n{_billing_link()}\n\n{_invoice_lines(invoice)}{_footer(tenant)}")


def payment_recovered(event: dict, invoice: dict, tenant: Tenant) -> Notice | None:
    if not _failed_before(event, tenant):
        return None  # an ordinary renewal: no news
    amount = format_amount(invoice.get("amount_paid"), invoice.get("currency"))
    plan, plan_line = _plan_line(tenant)
    return Notice(
        f"[{_name(tenant)}] Payment of {amount} received",
        f"Hello,\n\nThe payment of {amount} for {_name(tenant)}'s {plan_line} plan went through after an "
        f"earlier attempt failed. Nothing more to do: the {plan} plan's limits apply again in full.\n\n"
        f"The billing page:\n{_billing_link()}\n\n{_invoice_lines(invoice)}{_footer(tenant)}")


def subscription_canceled(event: dict, subscription: dict, tenant: Tenant) -> Notice | None:
    held = _held(tenant)
    if held is None or held.stripe_subscription_id != subscription.get("id") or held.status != "canceled":
        return None  # an older subscription the tenant replaced, or news older than the state applied
    plan, plan_line = _plan_line(tenant)
    return Notice(
        f"[{_name(tenant)}] The {plan} subscription is canceled",
        f"Hello,\n\n{_name(tenant)}'s {plan_line} subscription is canceled, and nothing more will be charged "
        "for it. The account now has the Free plan's limits; its API keys, numbers and history stay.\n\n"
        f"Subscribe again from the billing page:\n{_billing_link()}\n{_footer(tenant)}")


def trial_ending(event: dict, subscription: dict, tenant: Tenant) -> Notice | None:
    held = _held(tenant)
    if held is None or held.stripe_subscription_id != subscription.get("id") or held.status != "trialing":
        return None
    plan, plan_line = _plan_line(tenant)
    ends = (f"on {from_timestamp(subscription['trial_end']):%Y-%m-%d}" if subscription.get("trial_end")
            else "soon")
    flat = [item for item in (subscription.get("items") or {}).get("data") or []
            if (item.get("price") or {}).get("recurring", {}).get("usage_type") != "metered"]
    if flat:
        charge = format_amount(sum((item["price"].get("unit_amount") or 0) * (item.get("quantity") or 1)
                                   for item in flat), flat[0]["price"].get("currency"))
        then = f"Then the card on file is charged {charge} for the {plan} plan, and again every period."
    else:
        then = f"Then the {plan} plan is charged to the card on file."
    return Notice(
        f"[{_name(tenant)}] The {plan} trial ends {ends}",
        f"Hello,\n\nThe trial of {_name(tenant)}'s {plan_line} plan ends {ends}. {then}\n\n"
        f"To add or change the card, change plan or cancel before then, open the billing page:\n"
        f"{_billing_link()}\n{_footer(tenant)}")


def _failure_news(event: dict, tenant: Tenant) -> list[tuple[str, object]]:
    """The tenant's other processed payment events (failed or paid) up to this event's time, newest first."""
    created = from_timestamp(event["created"])
    return db.session.execute(
        select(StripeEvent.type, StripeEvent.created)
        .where(StripeEvent.tenant_id == tenant.id, StripeEvent.type.in_(FAILURE_NEWS), StripeEvent.id != event["id"],
               StripeEvent.processed_at.is_not(None), StripeEvent.created <= created)
        .order_by(StripeEvent.created.desc()).limit(10)).all()


def _failed_before(event: dict, tenant: Tenant) -> bool:
    """Whether the payment before this one failed: the newest earlier payment news is a failure."""
    rows = _failure_news(event, tenant)
    return bool(rows) and any(row.type == "invoice.payment_failed" for row in rows if row.created == rows[0].created)


def _settled_since(event: dict, tenant: Tenant) -> bool:
    """Whether a payment newer than this event (delivered before it) is already applied."""
    created = from_timestamp(event["created"])
    return db.session.scalar(
        select(StripeEvent.id).where(StripeEvent.tenant_id == tenant.id, StripeEvent.type == "invoice.paid",
                                     StripeEvent.processed_at.is_not(None), StripeEvent.created > created)
        .limit(1)) is not None


BUILDERS = {
    "invoice.payment_failed": payment_failed,
    "invoice.payment_action_required": payment_action_required,
    "invoice.paid": payment_recovered,
    "customer.subscription.deleted": subscription_canceled,
    "customer.subscription.trial_will_end": trial_ending,
}
