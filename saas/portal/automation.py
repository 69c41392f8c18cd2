"""The automation pages: rules (list, make, edit with a replay preview, delete), business hours per number,
and the settings. For members whose role may configure automation (not agents, who see the inbox only), on
a plan with it; otherwise the page says which plan has it."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from wtforms.fields import SelectChoice

from saas.automation import replay, rules, setup
from saas.automation.models import FEATURE
from saas.billing import entitlements
from saas.errors import InvalidRequest
from saas.extensions import db
from saas.inbox import actions as inbox_actions
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.portal.access import allowed, tenant_required
from saas.portal.automation_forms import HoursForm, RuleForm, SettingsForm, fill_from, rule_body, show_errors
from saas.portal.forms import ConfirmForm

bp = Blueprint("automation", __name__)


def _not_in_plan():
    return render_template("portal/automation/not_in_plan.html"), 403


def _in_plan(tenant) -> bool:
    return entitlements.for_tenant(tenant).may(FEATURE)


def _rule_form(tenant, form=None) -> RuleForm:
    form = form or RuleForm()
    form.numbers.choices = [SelectChoice(n.id, n.display_number) for n in numbers_for(tenant)]
    form.assign.choices = [SelectChoice("", "Leave as it is"), SelectChoice("round_robin", "Round robin"),
                           *[SelectChoice(str(m.id), m.email) for m in inbox_actions.team_members(tenant)]]
    return form


@bp.get("/automation")
@tenant_required
@allowed("automation")
def index(tenant):
    if not _in_plan(tenant):
        return _not_in_plan()
    settings = setup.settings_of(tenant)
    return render_template("portal/automation/index.html", rules=rules.rules_of(tenant), numbers=numbers_for(tenant),
                           settings=SettingsForm(timezone=settings.timezone,
                                                 replies_per_hour=settings.replies_per_hour))


@bp.post("/automation/settings")
@tenant_required
@allowed("automation")
def change_settings(tenant):
    if not _in_plan(tenant):
        return _not_in_plan()
    form = SettingsForm()
    if form.validate_on_submit():
        try:
            setup.change_settings(tenant, {"timezone": form.timezone.data,
                                           "replies_per_hour": form.replies_per_hour.data})
            flash("Automation settings saved.")
            return redirect(url_for("portal.automation.index"))
        except InvalidRequest as exc:
            db.session.rollback()
            form.timezone.errors = [m for reasons in (exc.details or {}).values() for m in reasons]
    return render_template("portal/automation/index.html", rules=rules.rules_of(tenant),
                           numbers=numbers_for(tenant), settings=form), 400


@bp.route("/automation/rules/new", methods=["GET", "POST"])
@tenant_required
@allowed("automation")
def new(tenant):
    if not _in_plan(tenant):
        return _not_in_plan()
    form = _rule_form(tenant)
    problems = []
    if form.validate_on_submit():
        try:
            rule = rules.create_rule(tenant, rule_body(form))
            flash(f"Rule “{rule.name}” saved.")
            return redirect(url_for("portal.automation.edit", rule_id=rule.id))
        except InvalidRequest as exc:
            db.session.rollback()
            problems = show_errors(form, exc.details, exc.message)
    status = 400 if request.method == "POST" else 200
    return render_template("portal/automation/rule.html", form=form, rule=None, problems=problems,
                           preview=None, confirm=ConfirmForm()), status


@bp.route("/automation/rules/<rule_id>", methods=["GET", "POST"])
@tenant_required
@allowed("automation")
def edit(tenant, rule_id):
    if not _in_plan(tenant):
        return _not_in_plan()
    rule = rules.get_rule(tenant, rule_id)
    form = _rule_form(tenant)
    problems = []
    if request.method == "GET":
        fill_from(form, rule)
    elif form.validate_on_submit():
        try:
            rules.update_rule(tenant, rule.id, rule_body(form, rule))
            flash("Rule saved.")
            return redirect(url_for("portal.automation.edit", rule_id=rule.id))
        except InvalidRequest as exc:
            db.session.rollback()
            problems = show_errors(form, exc.details, exc.message)
    status = 400 if request.method == "POST" else 200
    return render_template("portal/automation/rule.html", form=form, rule=rule, problems=problems,
                           preview=None, confirm=ConfirmForm()), status


@bp.post("/automation/rules/<rule_id>/replay")
@tenant_required
@allowed("automation")
def replay_rule(tenant, rule_id):
    if not _in_plan(tenant):
        return _not_in_plan()
    rule = rules.get_rule(tenant, rule_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("portal.automation.edit", rule_id=rule.id))
    preview = replay.replay(tenant, rule.id)
    form = _rule_form(tenant)
    fill_from(form, rules.get_rule(tenant, rule_id))
    return render_template("portal/automation/rule.html", form=form, rule=rules.get_rule(tenant, rule_id),
                           problems=[], preview=preview, confirm=ConfirmForm())


@bp.post("/automation/rules/<rule_id>/delete")
@tenant_required
@allowed("automation")
def delete(tenant, rule_id):
    if not _in_plan(tenant):
        return _not_in_plan()
    if ConfirmForm().validate_on_submit():
        rules.delete_rule(tenant, rule_id)
        flash("Rule deleted.")
    return redirect(url_for("portal.automation.index"))


def _hours_form(row) -> HoursForm:
    form = HoursForm()
    if request.method == "GET":
        weekly = row.weekly if row else {}
        for day in range(7):
            spans = weekly.get(str(day)) or []
            if spans:
                getattr(form, f"open_{day}").data, getattr(form, f"close_{day}").data = spans[0][0], spans[-1][1]
        form.holidays.data = "\n".join(row.holidays if row else [])
    return form


@bp.route("/automation/hours/<number_id>", methods=["GET", "POST"])
@tenant_required
@allowed("automation")
def hours(tenant, number_id):
    if not _in_plan(tenant):
        return _not_in_plan()
    number = setup.number_of(tenant, number_id)
    form = _hours_form(setup.hours_of(tenant, number.id))
    problems = []
    if request.method == "POST" and form.validate_on_submit():
        weekly = {str(day): [[getattr(form, f"open_{day}").data, getattr(form, f"close_{day}").data]]
                  for day in range(7) if getattr(form, f"open_{day}").data or getattr(form, f"close_{day}").data}
        holidays = [line.strip() for line in (form.holidays.data or "").splitlines() if line.strip()]
        try:
            setup.set_hours(tenant, number.id, {"weekly": weekly, "holidays": holidays})
            flash("Business hours saved.")
            return redirect(url_for("portal.automation.hours", number_id=number.id))
        except InvalidRequest as exc:
            db.session.rollback()
            problems = [f"{key}: {reason}" for key, reasons in (exc.details or {}).items() for reason in reasons]
    status = 400 if request.method == "POST" else 200
    return render_template("portal/automation/hours.html", form=form, number=number, problems=problems,
                           settings=setup.settings_of(tenant)), status
