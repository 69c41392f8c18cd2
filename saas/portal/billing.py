"""The billing pages: plans, Checkout, the Customer Portal, plan changes, invoices.

Stripe failing shows a message on the billing page and changes nothing; no
billing page answers 500 because of Stripe.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from saas.billing import checkout, entitlements, invoice_lines, plan_changes, stripe_client
from saas.billing.services import subscription_for
from saas.errors import BillingNotConfigured, BillingUnavailable, NotFound
from saas.exports import services as exports
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm, PlanChangeForm, PlanChoiceForm
from saas.security_headers import policy
from saas.urls import public_url

bp = Blueprint("billing", __name__)

# Where Checkout and the Customer Portal live; a form that posts to us may be redirected there.
STRIPE_PAGES = ("https://checkout.stripe.com", "https://billing.stripe.com")


def stripe_origins() -> list[str]:
    origins = list(STRIPE_PAGES)
    base = current_app.config.get("STRIPE_API_BASE")
    if base:  # a Stripe stand-in (tests, local runs) serves its pages from its own address
        parts = urlsplit(base)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins


def allow_redirects_to_stripe(response):
    """Browsers apply form-action to the redirects after a submit: our billing forms end on Stripe's pages, and
    every page's header may carry one (the billing notice's "Update your card"), so the portal's whole
    blueprint answers with this policy (saas.portal.routes)."""
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = policy(form_action=stripe_origins())
    return response


@bp.app_template_filter("money")
def money(cents: int | None, currency: str = "usd") -> str:
    if cents is None:
        return ""
    sign = "−" if cents < 0 else ""
    amount = f"{abs(cents) / 100:,.2f}"
    return f"{sign}${amount}" if currency.lower() == "usd" else f"{sign}{amount} {currency.upper()}"


def new_attempt() -> str:
    return secrets.token_hex(8)


def back_to_billing(message: str | None = None, category: str = "error"):
    if message:
        flash(message, category)
    return redirect(url_for("portal.billing.index"), 303)


def acting_user():
    return current_user._get_current_object()


@bp.get("/billing")
@tenant_required
@allowed("billing")
def index(tenant):
    configured = stripe_client.configured()
    rights = entitlements.for_tenant(tenant)
    invoice_rows, invoices_failed = [], False
    if configured and tenant.stripe_customer_id:
        try:
            invoice_rows = checkout.invoices(stripe_client.client(), tenant)
        except BillingUnavailable:
            invoices_failed = True
    subscription = subscription_for(tenant)
    offers = checkout.offers(tenant, rights, configured=configured)
    return render_template(
        "portal/billing.html", billing_configured=configured, offers={o.plan.code: o for o in offers},
        plans=[o.plan for o in offers], subscription=subscription, way_out=checkout.way_out(rights, tenant),
        current_code=checkout.current_plan_code(rights), invoices=invoice_rows, invoices_failed=invoices_failed,
        trial_eligible=subscription is None or subscription.stripe_subscription_id is None,
        attempt=new_attempt(), has_customer=bool(tenant.stripe_customer_id))


@bp.post("/billing/checkout", endpoint="checkout")
@tenant_required
@allowed("billing")
def checkout_start(tenant):
    form = PlanChoiceForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        url = checkout.start_checkout(
            stripe_client.client(), tenant, entitlements.for_tenant(tenant), form.plan.data,
            attempt=form.attempt.data,
            success_url=public_url("portal.billing.success") + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=public_url("portal.billing.cancel"))
    except checkout.PlanNotOffered as exc:
        return back_to_billing(str(exc))
    except (BillingUnavailable, BillingNotConfigured) as exc:
        return back_to_billing(exc.message)
    return redirect(url, 303)


@bp.get("/billing/success")
@tenant_required
@allowed("billing")
def success(tenant):
    try:
        result = checkout.finish_checkout(stripe_client.client(), tenant, request.args.get("session_id", ""),
                                          actor=acting_user())
    except NotFound:
        abort(404)
    except (BillingUnavailable, BillingNotConfigured) as exc:
        return back_to_billing(exc.message + " If you completed the payment, your plan changes within minutes.")
    return render_template("portal/billing_success.html", result=result)


@bp.get("/billing/cancel")
@tenant_required
@allowed("billing")
def cancel(tenant):
    return render_template("portal/billing_cancel.html")


@bp.post("/billing/portal")
@tenant_required
@allowed("billing")
def customer_portal(tenant):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        url = checkout.portal_url(stripe_client.client(), tenant, return_url=public_url("portal.billing.index"))
    except checkout.NoCustomer:
        return back_to_billing("You have no billing account yet: it is made when you first choose a paid plan.")
    except (BillingUnavailable, BillingNotConfigured) as exc:
        return back_to_billing(exc.message)
    return redirect(url, 303)


@bp.get("/billing/change/<code>")
@tenant_required
@allowed("billing")
def change(tenant, code):
    try:
        preview = plan_changes.preview_change(stripe_client.client(), tenant, entitlements.for_tenant(tenant), code)
    except checkout.PlanNotOffered as exc:
        return back_to_billing(str(exc))
    except (BillingUnavailable, BillingNotConfigured) as exc:
        return back_to_billing(exc.message)
    form = PlanChangeForm(plan=code, attempt=new_attempt(), proration_date=preview.proration_date)
    return render_template("portal/billing_change.html", preview=preview, form=form,
                           current=subscription_for(tenant).plan)


@bp.post("/billing/change/<code>")
@tenant_required
@allowed("billing")
def change_confirm(tenant, code):
    form = PlanChangeForm()
    if not form.validate_on_submit() or form.plan.data != code:
        abort(400)
    try:
        subscription = plan_changes.change_plan(
            stripe_client.client(), tenant, entitlements.for_tenant(tenant), code,
            proration_date=form.proration_date.data, attempt=form.attempt.data, actor=acting_user())
    except plan_changes.PreviewExpired as exc:
        flash(str(exc), "error")
        return redirect(url_for("portal.billing.change", code=code), 303)
    except checkout.PlanNotOffered as exc:
        return back_to_billing(str(exc))
    except (BillingUnavailable, BillingNotConfigured) as exc:
        return back_to_billing(exc.message)
    return back_to_billing(f"You are now on the {subscription.plan.name} plan.", "success")


@bp.get("/billing/invoices/<invoice_id>")
@tenant_required
@allowed("billing")
def invoice(tenant, invoice_id):
    """An invoice's lines; each overage line links to the usage records it charges (the usage-records export
    of its unit, past the plan's included amount, over the line's period)."""
    try:
        shown = invoice_lines.invoice_of(stripe_client.client(), tenant, invoice_id)
    except NotFound:
        abort(404)
    except (BillingUnavailable, BillingNotConfigured) as exc:
        return back_to_billing(exc.message)
    links = {index: url_for("portal.exports.download", name="usage-records",
                            **exports.records_behind(line.unit, line.period_start, line.period_end))
             for index, line in enumerate(shown.lines) if line.unit and line.period_start and line.period_end}
    return render_template("portal/invoice.html", invoice=shown, links=links)
