"""The admin's plan pages: list, create, edit, archive, unarchive, sync to Stripe."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from saas.admin.access import platform_admin_required
from saas.admin.plan_forms import ConfirmForm, EditPlanForm, PlanForm
from saas.billing import catalog, stripe_client
from saas.billing.stripe_catalog import CatalogSyncFailed, sync_plan

bp = Blueprint("admin_plans", __name__, url_prefix="/admin/plans")


def _plan_or_404(code: str):
    plan = catalog.plan_by_code(code)
    if plan is None:
        abort(404)
    return plan


def _sync(plan, *, asked: bool = False) -> bool:
    """Push the plan to Stripe when billing is configured; the page says how it went."""
    if not stripe_client.configured() or plan.is_free:
        return False
    try:
        lines = sync_plan(stripe_client.client(), plan, actor=current_user, audit_unchanged=asked)
    except CatalogSyncFailed as exc:
        flash(f"Saved here, but the sync to Stripe failed: {exc.message} "
              "The plan is listed as not synced; use Sync now to try again.", "error")
        return False
    flash("Stripe: " + "; ".join(lines), "info")
    return True


@bp.get("")
@platform_admin_required
def index():
    return render_template("admin/plans.html", plans=catalog.all_plans(), subscribers=catalog.subscriber_counts(),
                           stripe_configured=stripe_client.configured(), confirm=ConfirmForm())


@bp.route("/new", methods=["GET", "POST"])
@platform_admin_required
def new():
    form = PlanForm()
    if form.validate_on_submit():
        try:
            plan = catalog.create_plan(form.code.data, form.terms(), actor=current_user)
        except catalog.PlanError as exc:
            _field_error(form, exc)
        else:
            flash(f"Plan {plan.code} created.", "info")
            _sync(plan)
            return redirect(url_for("admin_plans.index"))
    return render_template("admin/plans_form.html", form=form, plan=None), 400 if form.errors else 200


@bp.route("/<code>/edit", methods=["GET", "POST"])
@platform_admin_required
def edit(code):
    plan = _plan_or_404(code)
    form = EditPlanForm(obj=plan)
    if form.validate_on_submit():
        try:
            changed = catalog.update_plan(plan, form.terms(), actor=current_user)
        except catalog.PlanError as exc:
            _field_error(form, exc)
        else:
            if changed:
                flash(f"Plan {plan.code} saved ({', '.join(changed)} changed).", "info")
                _sync(plan)
            else:
                flash(f"Plan {plan.code}: nothing changed.", "info")
            return redirect(url_for("admin_plans.index"))
    return render_template("admin/plans_form.html", form=form, plan=plan), 400 if form.errors else 200


def _field_error(form, exc: catalog.PlanError) -> None:
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None:
        field.errors = list(field.errors) + [exc.message]
    else:
        flash(exc.message, "error")


def _confirmed() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400)


@bp.post("/<code>/archive")
@platform_admin_required
def archive(code):
    _confirmed()
    plan = _plan_or_404(code)
    try:
        archived = catalog.archive_plan(plan, actor=current_user)
    except catalog.PlanError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin_plans.index"))
    if archived:
        flash(f"Plan {plan.code} archived: its subscribers keep it, nobody new can choose it.", "info")
        _sync(plan)
    return redirect(url_for("admin_plans.index"))


@bp.post("/<code>/unarchive")
@platform_admin_required
def unarchive(code):
    _confirmed()
    plan = _plan_or_404(code)
    if catalog.unarchive_plan(plan, actor=current_user):
        flash(f"Plan {plan.code} is on sale again.", "info")
        _sync(plan)
    return redirect(url_for("admin_plans.index"))


@bp.post("/<code>/sync")
@platform_admin_required
def sync(code):
    _confirmed()
    plan = _plan_or_404(code)
    if not stripe_client.configured():
        flash("Stripe is not configured (STRIPE_SECRET_KEY): there is nothing to sync to.", "error")
    else:
        _sync(plan, asked=True)
    return redirect(url_for("admin_plans.index"))
