"""The team pages: members and invitations (/team), accepting an invitation (/invite/<token>), leaving."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length

from saas.errors import NotFound
from saas.inbox.seats import role_limits
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm
from saas.tenants import roles, team
from saas.tenants.models import ROLES
from saas.tenants.services import MIN_PASSWORD
from saas.urls import public_url

bp = Blueprint("team", __name__)


def _role_choices():
    return [SelectChoice(r, r.capitalize()) for r in ROLES]


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=_role_choices(), default="developer")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=_role_choices())


class JoinForm(FlaskForm):
    password = PasswordField("Choose a password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200)])


def _team_page(tenant, form=None, status=200, link=None, error=None):
    return render_template(
        "portal/team.html", form=form or InviteForm(), members=team.members(tenant),
        invites=team.pending_invites(tenant), link=link, error=error, button_form=ConfirmForm(),
        role_choices=_role_choices(), descriptions=roles.ROLE_DESCRIPTIONS), status


def invite_link(token: str) -> str:
    """The invitation's link, on our public address (saas.urls: never built from an untrusted Host)."""
    return public_url("portal.team.accept_invite", token=token)


@bp.route("/team", methods=["GET", "POST"])
@tenant_required
@allowed("members")
def index(tenant):
    form = InviteForm()
    if request.method == "GET":
        return _team_page(tenant)
    if not form.validate_on_submit():
        return _team_page(tenant, form, 400)
    try:
        new = team.invite(current_user, tenant, form.email.data, form.role.data, limits=role_limits(tenant))
    except team.TeamError as exc:
        getattr(form, exc.field or "email").errors.append(exc.message)
        return _team_page(tenant, form, 400)
    link = invite_link(new.token)
    team.deliver_invite(new.invite, link)
    return _team_page(tenant, InviteForm(formdata=None), 201, link=(new.invite, link))


@bp.post("/team/invites/<invite_id>/revoke")
@tenant_required
@allowed("members")
def revoke_invite(tenant, invite_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        row = team.revoke_invite(current_user, tenant, invite_id)
    except NotFound:
        abort(404)
    except team.TeamError as exc:
        return _team_page(tenant, status=409, error=exc.message)
    flash(f"The invitation of {row.email} is withdrawn; its link no longer works.", "info")
    return redirect(url_for("portal.team.index"), 303)


@bp.post("/team/members/<user_id>/role")
@tenant_required
@allowed("members")
def change_role(tenant, user_id):
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        member = team.change_role(current_user, tenant, user_id, form.role.data, limits=role_limits(tenant))
    except NotFound:
        abort(404)
    except team.TeamError as exc:
        return _team_page(tenant, status=409, error=exc.message)
    flash(f"{member.email} is now {member.role}.", "success")
    return redirect(url_for("portal.team.index"), 303)


@bp.post("/team/members/<user_id>/remove")
@tenant_required
@allowed("members")
def remove_member(tenant, user_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        member = team.remove_member(current_user, tenant, user_id)
    except NotFound:
        abort(404)
    except team.TeamError as exc:
        return _team_page(tenant, status=409, error=exc.message)
    flash(f"{member.email} is no longer a member.", "info")
    return redirect(url_for("portal.team.index"), 303)


@bp.route("/team/leave", methods=["GET", "POST"])
@tenant_required
def leave(tenant):
    form = ConfirmForm()
    error, status = None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        try:
            team.leave(current_user, tenant)
        except team.TeamError as exc:
            error, status = exc.message, 409
        else:
            flash(f"You left {tenant.name}.", "info")
            return redirect(url_for("portal.home.dashboard"), 303)
    return render_template("portal/team_leave.html", form=form, error=error), status


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token):
    try:
        row = team.usable_invite(token)
    except team.InviteUnusable as exc:
        return render_template("portal/invite.html", problem=exc.message), exc.status
    context = {"invite": row, "tenant_name": row.tenant.name}
    if current_user.is_authenticated:
        form = ConfirmForm()
        if request.method == "POST":
            if not form.validate_on_submit():
                abort(400)
            try:
                team.accept_as(current_user, token)
            except team.InviteUnusable as exc:
                return render_template("portal/invite.html", problem=exc.message), exc.status
            except team.TeamError as exc:
                return render_template("portal/invite.html", problem=exc.message), 403
            flash(f"You joined {context['tenant_name']} as {row.role}.", "success")
            return redirect(url_for("portal.home.dashboard"), 303)
        if current_user.email != row.email:
            return render_template("portal/invite.html", problem=(
                "This invitation was sent to another email address. Log out, then open the link again.")), 403
        return render_template("portal/invite.html", confirm_form=form, **context)
    if team.account_for(row) is not None:
        # Someone has this email: logging in shows whether they may join, without saying more here.
        return render_template("portal/invite.html", login_first=True, **context)
    form = JoinForm()
    if form.validate_on_submit():
        try:
            user = team.accept_as_new_user(token, form.password.data)
        except team.InviteUnusable as exc:
            return render_template("portal/invite.html", problem=exc.message), exc.status
        except team.TeamError as exc:
            if exc.field:
                form.password.errors.append(exc.message)
            else:
                return render_template("portal/invite.html", problem=exc.message), 403
        else:
            login_user(user)
            flash(f"Welcome to {context['tenant_name']}! You are a {user.role}.", "success")
            return redirect(url_for("portal.home.dashboard"), 303)
    return render_template("portal/invite.html", join_form=form, **context), 400 if form.errors else 200
