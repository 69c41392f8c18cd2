"""What every page's template gets, whichever blueprint renders it: the text filters, the role checks, the
feature names, and the header's account status (plan, usage, billing problems)."""
from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from saas.billing import checkout, entitlements, stripe_client, webhooks
from saas.billing.services import subscription_for
from saas.metering.services import usage_summary
from saas.portal.access import may
from saas.portal.marked_text import breakable, inline_code
from saas.portal.plan_standing import standing
from saas.text import inert


def register(bp: Blueprint) -> None:
    """Install the filters and context processors app-wide when ``bp`` is registered."""
    bp.add_app_template_filter(inert_filter, "inert")
    bp.add_app_template_filter(inline_code, "inline_code")
    bp.add_app_template_filter(breakable, "breakable")
    for processor in (role_checks, feature_names, account_status):
        bp.app_context_processor(processor)


def inert_filter(value):
    """Tenant-provided text for display: without bidi and control characters (still escaped)."""
    return inert(value)


def role_checks():
    return {"may": may}


def feature_names():
    from saas.billing.models import FEATURE_NAMES

    return {"feature_names": FEATURE_NAMES, "live_numbers_allowed": entitlements.live_numbers_allowed}


def account_status():
    """What every page's header says: plan, usage, billing problems."""
    if not current_user.is_authenticated or current_user.tenant is None:
        return {"account": None}
    tenant = current_user.tenant
    subscription = subscription_for(tenant)
    rights = entitlements.for_tenant(tenant, subscription)
    return {"account": {
        "tenant": tenant,
        "rights": rights,
        "standing": standing(rights, subscription),
        "usage": usage_summary(tenant, subscription, rights),
        "way_out": checkout.way_out(rights, tenant),
        "billing_configured": stripe_client.configured(),
        "payment_action_url": webhooks.payment_action_needed(tenant),
    }}
