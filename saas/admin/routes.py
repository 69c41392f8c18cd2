"""The platform admin console (platform admins only; everyone else gets a 404).

Each view parses, asks the back office (saas.back_office), renders.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from saas.admin.access import platform_admin_required
from saas.admin.forms import AssignPlanForm, ConfirmForm
from saas.admin.tenants import without_bidi
from saas.back_office import tenants as office
from saas.back_office.audit_log import audit_log as read_audit_log
from saas.billing import stripe_client
from saas.billing.services import PlanChangeRefused, UnknownPlan
from saas.billing.standing import PastDueGrace
from saas.extensions import db
from saas.ids import page_number, parse_id
from saas.tenants.models import TENANT_ACTIVE, TENANT_SUSPENDED
from saas.timeutil import utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.app_template_filter("no_bidi")
def no_bidi(text):
    return without_bidi(text)


# The console's own form ("USD 99.00"): one column of several currencies reads evenly.
@bp.app_template_filter("currency_amount")
def currency_amount(cents, currency="usd"):
    return f"{(currency or '').upper()} {(cents or 0) / 100:,.2f}"


@bp.context_processor
def console_links():
    # The plans pages live in their own blueprint; link to them where this app has them.
    has_plans = "admin_plans.index" in current_app.view_functions
    return {"plans_url": url_for("admin_plans.index") if has_plans else None}


def _as_of() -> dict:
    """When the back office reads, and the past-due grace it counts revenue and rights by."""
    return {"now": utcnow(), "grace": PastDueGrace.configured()}


def _metering():
    return current_app.extensions["metering"]


def _tenant_or_404(raw_id):
    tenant = office.find_tenant(db.session, parse_id(raw_id))
    if tenant is None:
        abort(404)
    return tenant


@bp.get("/")
@platform_admin_required
def index():
    board = office.dashboard(db.session, _metering(), **_as_of())
    return render_template("admin/index.html", figures=board.figures, newest=board.newest, plans=board.plans)


@bp.get("/tenants")
@platform_admin_required
def tenants():
    q = office.clean_query(request.args.get("q"))
    page = office.list_tenants(db.session, _metering(), q, page_number(request.args.get("page")), **_as_of())
    return render_template("admin/tenants.html", page=page, q=q)


def _tenant_page(tenant_id, plan_form=None, plan_error=None, status=200):
    detail = office.tenant_detail(db.session, tenant_id, **_as_of()) if tenant_id is not None else None
    if detail is None:
        abort(404)
    if plan_form is None:
        plan_form = AssignPlanForm(plan=detail.plan.code if detail.plan else None)
    plan_form.plan.choices = [(p.code, f"{p.name}{'' if p.active else ' (archived)'}")
                              for p in detail.plan_choices]
    return render_template("admin/tenant.html", d=detail, plan_form=plan_form, plan_error=plan_error,
                           confirm=ConfirmForm(), stripe_configured=stripe_client.configured()), status


@bp.get("/tenants/<tenant_id>")
@platform_admin_required
def tenant(tenant_id):
    return _tenant_page(parse_id(tenant_id))


def _change_status(tenant_id, status):
    tenant = _tenant_or_404(tenant_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    change = office.set_status(db.session, tenant.id, status, actor=current_user)
    if change is None:
        abort(404)
    if status == TENANT_SUSPENDED:
        flash(f"{tenant.slug} is suspended: its API calls are refused." if change.changed
              else f"{tenant.slug} was already suspended.", "info")
    else:
        flash(f"{tenant.slug} is active again." if change.changed else f"{tenant.slug} was already active.", "info")
    return redirect(url_for("admin.tenant", tenant_id=tenant.id), 303)


@bp.post("/tenants/<tenant_id>/suspend")
@platform_admin_required
def suspend(tenant_id):
    return _change_status(tenant_id, TENANT_SUSPENDED)


@bp.post("/tenants/<tenant_id>/reactivate")
@platform_admin_required
def reactivate(tenant_id):
    return _change_status(tenant_id, TENANT_ACTIVE)


@bp.post("/tenants/<tenant_id>/plan")
@platform_admin_required
def set_plan(tenant_id):
    tenant = _tenant_or_404(tenant_id)
    form = AssignPlanForm()
    form.plan.choices = [(p.code, p.name) for p in office.plan_choices(db.session, tenant.id)]
    if not form.validate_on_submit():
        return _tenant_page(tenant.id, form, status=400)
    try:
        plan = office.assign_plan(db.session, tenant.id, form.plan.data, actor=current_user,
                                  stripe_configured=stripe_client.configured())
    except (UnknownPlan, PlanChangeRefused) as exc:
        return _tenant_page(tenant.id, form, plan_error=str(exc), status=409)
    if plan is None:
        abort(404)
    flash(f"{tenant.slug} is on the plan {plan.name}.", "success")
    return redirect(url_for("admin.tenant", tenant_id=tenant.id), 303)


@bp.get("/audit")
@platform_admin_required
def audit_log():
    tenant = None
    if request.args.get("tenant"):
        tenant = _tenant_or_404(request.args["tenant"])
    page = read_audit_log(db.session, tenant.id if tenant else None, page_number(request.args.get("page")))
    return render_template("admin/audit.html", page=page, tenant=tenant)
