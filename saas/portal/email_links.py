"""Pages reached from emails: signup's "check your email", verification, resending it, password reset."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from saas.onboarding import emails
from saas.portal.forms import ConfirmForm
from saas.portal.sessions import SIGNUP_USER, begin_half_login, start_session
from saas.tenants import twofactor
from saas.tenants.services import MIN_PASSWORD, AccountError
from saas.urls import public_base

bp = Blueprint("email_links", __name__)


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class ResetPasswordForm(FlaskForm):
    # The same rules as signup's password.
    password = PasswordField("New password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200)])


@bp.app_context_processor
def email_banner():
    """The address to verify, for the banner every page shows until it is verified."""
    if current_user.is_authenticated and current_user.email_verified_at is None:
        return {"unverified_email": current_user.email}
    return {"unverified_email": None}


@bp.get("/signup/check-email")
def check_email():
    return render_template("portal/check_email.html", email=session.get("signup_email"))


@bp.route("/verify-email/<token>", methods=["GET", "POST"])
def verify_email(token):
    """GET only shows a button: mail systems' link scanners open every link in an email, and opening
    one must change nothing. The button's POST (CSRF-checked) verifies; it logs in only the browser
    that signed up (or one already logged in as the link's owner); anyone else is sent to log in."""
    try:
        user = emails.verification_user(token)
    except emails.LinkError as exc:
        return render_template("portal/link_problem.html", kind="verify", reason=exc.reason), 400
    if current_user.is_authenticated and current_user.id != user.id:
        # Nothing changes: the link's owner verifies it from their own session.
        return render_template("portal/link_problem.html", kind="verify", reason="other"), 403
    form = ConfirmForm()
    if request.method == "GET":
        return render_template("portal/verify_email.html", form=form, email=user.email,
                               verified=user.email_verified_at is not None)
    if not form.validate_on_submit():
        abort(400)
    verified = emails.verify(user)
    if not verified.first_time:
        # Pressed again: the address stays verified; the link logs nobody in a second time.
        flash("Your email address is already verified.", "info")
        return redirect(url_for("portal.home.dashboard" if current_user.is_authenticated else "portal.auth.login"),
                        303)
    welcome = ("Your email address is verified. Welcome! Your sandbox number is ready: create an API key to "
               "send your first message.")
    if current_user.is_authenticated:
        flash(welcome, "success")
        return redirect(url_for("portal.home.dashboard"), 303)
    if session.get(SIGNUP_USER) == user.id and user.totp_enabled_at is None:
        # The browser that signed up, which knew the password: it continues logged in.
        emails.note_login(user)
        start_session(user)
        flash(welcome, "success")
        return redirect(url_for("portal.home.dashboard"), 303)
    flash("Your email address is verified. Log in to continue.", "success")
    return redirect(url_for("portal.auth.login"), 303)


@bp.post("/verify-email/resend")
@login_required
def resend_verification():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if current_user.email_verified_at is not None:
        flash("Your email address is already verified.", "info")
    elif emails.resend_verification(current_user):
        flash(f"We sent a new verification link to {current_user.email}.", "success")
    else:
        flash("We sent you a link less than a minute ago: check your inbox (and spam folder), "
              "or try again in a minute.", "error")
    return redirect(url_for("portal.home.dashboard"), 303)


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        # The lookup and the email happen in the background: the same answer at the same speed either way.
        # The link's base is ours, never the request's Host header (a forged one would receive the link).
        emails.request_reset(form.email.data, public_base())
        flash("If an account exists for that address, we sent a link to reset its password. "
              "It works for one hour.", "info")
        return redirect(url_for("portal.auth.login"), 303)
    return render_template("portal/forgot_password.html", form=form), 400 if form.errors else 200


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token):
    try:
        emails.reset_user(token)
    except emails.LinkError as exc:
        return render_template("portal/link_problem.html", kind="reset", reason=exc.reason), 400
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            user = emails.reset_password(token, form.password.data)
        except emails.LinkError as exc:
            return render_template("portal/link_problem.html", kind="reset", reason=exc.reason), 400
        except AccountError as exc:
            form.password.errors.append(exc.message)
        else:
            if twofactor.enabled(user):
                # The link proves the mailbox, not the second factor: the login finishes at the code step.
                response = begin_half_login(user, None)
                flash("Your password is changed. Enter the code from your authenticator app to log in.", "success")
                return response
            start_session(user)
            flash("Your password is changed, and you are logged in.", "success")
            return redirect(url_for("portal.home.dashboard"), 303)
    return render_template("portal/reset_password.html", form=form), 400 if form.errors else 200
