"""Signing up, logging in (the password step; the code step is saas.portal.twofactor's), logging out.

Attempts are counted by saas.tenants.login_attempts; these views show what it refuses.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user

from saas.onboarding import emails
from saas.onboarding import services as onboarding
from saas.portal.forms import ConfirmForm, LoginForm, SignupForm
from saas.portal.sessions import SIGNUP_USER, begin_half_login, client_address, safe_next, start_session, throttled
from saas.tenants import login_attempts, security
from saas.tenants import services as accounts

bp = Blueprint("auth", __name__)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("portal.home.dashboard"))
    form = SignupForm()
    error = None
    if form.validate_on_submit():
        try:
            login_attempts.count_signup(client_address())
        except login_attempts.Throttled as exc:
            error = throttled(exc, "signups from your network")
            return render_template("portal/signup.html", form=form, error=error), 429
        # A new address and a registered one get the same answer: "check your email". The new
        # account is logged in by its verification link; a registered address's owner is warned.
        try:
            user = onboarding.sign_up(form.company.data, form.email.data, form.password.data)
        except accounts.EmailTaken:
            emails.warn_existing_account(accounts.normalise_email(form.email.data))
            session["signup_email"] = accounts.normalise_email(form.email.data)
            return redirect(url_for("portal.email_links.check_email"), 303)
        except accounts.AccountError as exc:
            getattr(form, "company" if exc.field == "company" else exc.field).errors.append(exc.message)
        else:
            emails.send_verification(user)
            session["signup_email"] = user.email
            # This browser knew the password: verifying from it logs the new account in.
            session[SIGNUP_USER] = user.id
            return redirect(url_for("portal.email_links.check_email"), 303)
    return render_template("portal/signup.html", form=form, error=error), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("portal.home.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = login_attempts.log_in(form.email.data, form.password.data, address=client_address())
        except login_attempts.Throttled as exc:
            error = throttled(exc, "failed login attempts")
            return render_template("portal/login.html", form=form, error=error), 429
        except login_attempts.Refused as exc:
            error = exc.message
        else:
            if user.totp_enabled_at is not None:
                return begin_half_login(user, request.args.get("next"))
            start_session(user)
            return redirect(safe_next(request.args.get("next")) or url_for("portal.home.dashboard"))
    status = 400 if (error or form.errors) else 200
    return render_template("portal/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    if current_user.is_authenticated:
        # Ends this session and every copy of its cookie (and the user's other sessions).
        security.end_sessions(current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("portal.auth.login"))
