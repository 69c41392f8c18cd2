"""The user's own account: change the password, end the other sessions."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from saas.portal.forms import ConfirmForm, StrongPassword
from saas.portal.sessions import start_session, throttled
from saas.tenants import login_attempts, security
from saas.tenants.services import MIN_PASSWORD

bp = Blueprint("account", __name__)


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200),
                                                             StrongPassword()],
                                 description=security.PASSWORD_RULE)


def _page(form, status=200):
    return render_template("portal/account.html", form=form, sessions_form=ConfirmForm()), status


@bp.get("/account")
@login_required
def index():
    return _page(ChangePasswordForm())


@bp.post("/account/password")
@login_required
def change_password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    user = current_user._get_current_object()
    try:
        security.change_password(user, form.current_password.data, form.new_password.data)
    except login_attempts.Throttled as exc:
        form.current_password.errors.append(throttled(exc, "wrong passwords"))
        return _page(form, 429)
    except login_attempts.Refused as exc:
        getattr(form, exc.field).errors.append(exc.message)
        return _page(form, 400)
    # Every session ended with the old password; this one goes on, on a fresh session.
    start_session(user)
    flash("Your password is changed. You were logged out everywhere else.", "success")
    return redirect(url_for("portal.account.index"), 303)


@bp.post("/account/sessions/end")
@login_required
def end_other_sessions():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    security.end_sessions(user)
    start_session(user)
    flash("You are logged out everywhere else: other browsers and devices must log in again.", "success")
    return redirect(url_for("portal.account.index"), 303)
