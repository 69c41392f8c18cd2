"""The front page (plans, for visitors) and the tenant's dashboard."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from saas.billing.catalog import active_plans
from saas.messaging import services as messaging
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.portal.access import forbidden, tenant_required
from saas.tenants import roles
from saas.urls import public_base

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("portal.home.dashboard"))
    return render_template("portal/index.html", plans=active_plans())


@bp.get("/dashboard")
@tenant_required
def dashboard(tenant):
    if not roles.may(current_user.role, "dashboard"):
        # Where every login lands: an agent's place is the inbox (they see nothing else).
        if roles.may(current_user.role, "inbox"):
            return redirect(url_for("portal.inbox.queue"))
        return forbidden("dashboard")
    from saas.onboarding.steps import first_steps

    every_number = numbers_for(tenant, include_disconnected=True)
    return render_template(
        "portal/dashboard.html",
        numbers=[number for number in every_number if number.connected],
        # Which of the tenant's numbers sent or received each message (a disconnected one keeps its history).
        number_of={number.id: number for number in every_number},
        messages=messaging.list_messages(tenant, limit=10),
        steps=first_steps(tenant),
        api_base=public_base(),
    )
