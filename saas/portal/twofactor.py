"""Two-factor login: enrolling (secret, otpauth URI, confirm, recovery codes), the code step of
login, and turning it off."""
from __future__ import annotations

import segno
from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from saas.portal.sessions import HALF_LOGIN, client_address, half_logged_in, start_session, throttled
from saas.tenants import login_attempts, security, twofactor

bp = Blueprint("twofactor", __name__)

PENDING_SECRET = "totp_pending"


class CodeForm(FlaskForm):
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=64)])


class DisableForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=64)])


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    user = half_logged_in()
    if user is None:
        flash("Log in again: the code must follow the password within "
              f"{current_app.config['TWO_FACTOR_LOGIN_SECONDS'] // 60} minutes.", "info")
        return redirect(url_for("portal.auth.login"))
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        try:
            used = login_attempts.enter_code(user, form.code.data, address=client_address())
        except login_attempts.Throttled as exc:
            error = throttled(exc, "wrong codes")
            return render_template("portal/login_code.html", form=form, error=error), 429
        except login_attempts.Refused as exc:
            error = exc.message
        else:
            next_url = session[HALF_LOGIN].get("next")
            start_session(user)
            if used == "recovery":
                flash(f"You used a recovery code; {twofactor.recovery_codes_left(user)} are left. "
                      "Each works once.", "info")
            return redirect(next_url or url_for("portal.home.dashboard"))
    return render_template("portal/login_code.html", form=form, error=error), 400 if (error or form.errors) else 200


def qr_code(uri: str) -> Markup:
    """``uri`` as a QR code in inline SVG: paths with presentation attributes only (no script, no style), so it
    shows under the Content-Security-Policy; dark on white, so it scans in a dark theme too."""
    code = segno.make(uri, error="m")
    return Markup(code.svg_inline(scale=4, border=4, dark="#000", light="#fff", svgclass="totp-qr",
                                  title="QR code: scan it with your authenticator app"))


def _enroll_page(form=None, disable_form=None, codes=None, status=200):
    user = current_user._get_current_object()
    context = {"user": user, "enabled": twofactor.enabled(user), "codes": codes,
               "form": form or CodeForm(), "disable_form": disable_form or DisableForm()}
    if not context["enabled"]:
        secret = session.get(PENDING_SECRET)
        if not isinstance(secret, str):
            secret = session[PENDING_SECRET] = twofactor.new_secret()
        uri = twofactor.provisioning_uri(secret, user.email)
        context.update(secret=secret, uri=uri, qr_code=qr_code(uri))
    else:
        context["codes_left"] = twofactor.recovery_codes_left(user)
    return render_template("portal/two_factor.html", **context), status


@bp.get("/account/two-factor")
@login_required
def index():
    return _enroll_page()


@bp.post("/account/two-factor/enable")
@login_required
def enable():
    user = current_user._get_current_object()
    if twofactor.enabled(user):
        return redirect(url_for("portal.twofactor.index"), 303)
    form = CodeForm()
    secret = session.get(PENDING_SECRET)
    if not form.validate_on_submit() or not isinstance(secret, str):
        return _enroll_page(form=form, status=400)
    if not twofactor.confirm_code(secret, form.code.data):
        form.code.errors.append("That code is not right: check the time on your phone and type the current code.")
        return _enroll_page(form=form, status=400)
    codes = twofactor.enable(user, secret)
    # Sessions from before two-factor (someone else's, perhaps) end; this one goes on.
    security.end_sessions(user)
    start_session(user)
    return _enroll_page(codes=codes)


@bp.post("/account/two-factor/disable")
@login_required
def disable():
    user = current_user._get_current_object()
    form = DisableForm()
    if not twofactor.enabled(user):
        return redirect(url_for("portal.twofactor.index"), 303)
    if not form.validate_on_submit():
        return _enroll_page(disable_form=form, status=400)
    try:
        security.turn_off_two_factor(user, form.password.data, form.code.data)
    except login_attempts.Throttled as exc:
        form.code.errors.append(throttled(exc, "wrong passwords or codes"))
        return _enroll_page(disable_form=form, status=429)
    except login_attempts.Refused as exc:
        getattr(form, exc.field).errors.append(exc.message)
        return _enroll_page(disable_form=form, status=400)
    flash("Two-factor login is off. Logging in now needs only your password.", "info")
    return redirect(url_for("portal.twofactor.index"), 303)
