"""The tenant's web pages: signup, login, dashboard, API keys, numbers, billing."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from saas.billing import checkout, entitlements, stripe_client, webhooks
from saas.billing.catalog import active_plans
from saas.billing.services import subscription_for
from saas.errors import NotFound
from saas.extensions import db, login_manager
from saas.messaging import services as messaging
from saas.messaging.numbers import numbers_for
from saas.metering.services import usage_summary
from saas.onboarding import services as onboarding
from saas.portal.access import allowed, may
from saas.portal.forms import ApiKeyForm, ConfirmForm, ConnectNumberForm, LoginForm, SignupForm
from saas.portal.marked_text import breakable, inline_code
from saas.portal.plan_standing import standing
from saas.tenants import login_attempts, security
from saas.tenants import services as accounts
from saas.tenants.models import TENANT_SUSPENDED, User
from saas.text import inert, problem
from saas.urls import no_store, public_base

bp = Blueprint("portal", __name__)

login_manager.login_view = "portal.login"
login_manager.login_message = "Log in to continue."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(user_id):
    """The session's user, if the session's version is still the user's (see saas.tenants.security)."""
    user_part, _, version = (user_id or "").partition(":")
    try:
        user = db.session.get(User, int(user_part))
        version = int(version)
    except (TypeError, ValueError):
        return None
    if user is None or user.session_version != version:
        return None
    return user


# The session key naming the account this browser just signed up: verifying from here logs it in.
SIGNUP_USER = "signup_user_id"


def start_session(user) -> None:
    """Log ``user`` in on a fresh session: nothing of the session before (nor its CSRF token) survives."""
    session.clear()
    g.pop("csrf_token", None)
    login_user(user)


def client_address() -> str:
    # With TRUSTED_PROXIES set, ProxyFix has already put the client's address here.
    return request.remote_addr or "unknown"


def wait_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{-(-minutes // 60)} hours"


def throttled(exc: login_attempts.Throttled, what: str) -> str:
    """The form error for a throttled attempt; the response's Retry-After says the same wait."""
    g.retry_after = str(exc.retry_after)
    return f"Too many {what}. Try again in {wait_words(exc.retry_after)}."


def tenant_required(view):
    """Logged in as a user of a tenant; the tenant is passed to the view."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if current_user.tenant is None:
            if not current_user.is_platform_admin:  # removed from their team, or left it
                return render_template("portal/no_team.html"), 403
            return redirect(url_for("admin.index"))
        from flask import g

        g.tenant_id = current_user.tenant_id
        if current_user.tenant.status == TENANT_SUSPENDED:
            # A suspended account changes nothing: every page of it shows why, and every form is refused.
            return render_template("portal/suspended.html"), 403
        return view(current_user.tenant, *args, **kwargs)

    return wrapper


@bp.app_template_filter("inert")
def inert_filter(value):
    """Tenant-provided text for display: without bidi and control characters (still escaped)."""
    return inert(value)


bp.add_app_template_filter(inline_code, "inline_code")
bp.add_app_template_filter(breakable, "breakable")


@bp.app_context_processor
def role_checks():
    return {"may": may}


@bp.app_context_processor
def feature_names():
    from saas.billing.models import FEATURE_NAMES

    return {"feature_names": FEATURE_NAMES, "live_numbers_allowed": entitlements.live_numbers_allowed}


@bp.app_context_processor
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


def safe_next(target: str | None) -> str | None:
    """A path on this site to go to after login, or None.

    Refused: other sites (``//host``, ``/\\host``, schemes), and control characters, which
    a Location header cannot carry (CR/LF would split it).
    """
    if not target or len(target) > 2000 or "\\" in target or problem(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("portal.dashboard"))
    return render_template("portal/index.html", plans=active_plans())


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("portal.dashboard"))
    form = SignupForm()
    error = None
    if form.validate_on_submit():
        # A new address and a registered one get the same answer: "check your email". The new
        # account is logged in by its verification link; a registered address's owner is warned.
        from flask import session

        from saas.onboarding import emails

        try:
            login_attempts.count_signup(client_address())
        except login_attempts.Throttled as exc:
            error = throttled(exc, "signups from your network")
            return render_template("portal/signup.html", form=form, error=error), 429
        try:
            user = onboarding.sign_up(form.company.data, form.email.data, form.password.data)
        except accounts.EmailTaken:
            emails.warn_existing_account(accounts.normalise_email(form.email.data))
            session["signup_email"] = accounts.normalise_email(form.email.data)
            return redirect(url_for("portal.check_email"), 303)
        except accounts.AccountError as exc:
            getattr(form, "company" if exc.field == "company" else exc.field).errors.append(exc.message)
        else:
            emails.send_verification(user)
            session["signup_email"] = user.email
            # This browser knew the password: verifying from it logs the new account in.
            session[SIGNUP_USER] = user.id
            return redirect(url_for("portal.check_email"), 303)
    return render_template("portal/signup.html", form=form, error=error), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("portal.dashboard"))
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
                from saas.portal.twofactor import begin_half_login

                return begin_half_login(user, request.args.get("next"))
            start_session(user)
            return redirect(safe_next(request.args.get("next")) or url_for("portal.dashboard"))
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
    return redirect(url_for("portal.login"))


@bp.get("/dashboard")
@tenant_required
def dashboard(tenant):
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


@bp.route("/keys", methods=["GET", "POST"])
@tenant_required
@allowed("keys")
@no_store
def keys(tenant):
    form = ApiKeyForm()
    new_key = None
    if form.validate_on_submit():
        try:
            new_key = accounts.create_api_key(tenant, form.name.data, actor=current_user)
        except accounts.AccountError as exc:
            form.name.errors.append(exc.message)
        else:
            # The next key gets a name of its own, not this one's again.
            form.name.data = ""
    status = 400 if form.errors else (201 if new_key else 200)
    return render_template("portal/keys.html", form=form, new_key=new_key, keys=accounts.list_api_keys(tenant),
                           revoke_form=ConfirmForm(), numbers=numbers_for(tenant),
                           api_base=public_base()), status


@bp.post("/keys/<key_id>/revoke")
@tenant_required
@allowed("keys")
def revoke_key(tenant, key_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        key = accounts.revoke_api_key(tenant, key_id, actor=current_user)
    except NotFound:
        abort(404)
    flash(f"Key {key.prefix}… is revoked; requests with it now fail.", "info")
    return redirect(url_for("portal.keys"))


def _number_lookup():
    from flask import current_app

    return current_app.extensions["number_info"]


@bp.route("/numbers", methods=["GET", "POST"])
@tenant_required
@allowed("numbers")
def numbers(tenant):
    from saas.messaging import connections

    form = ConnectNumberForm()
    connect_error = None
    if form.validate_on_submit():
        try:
            connected = connections.connect_number(
                tenant, current_user, phone_number_id=form.phone_number_id.data, waba_id=form.waba_id.data,
                token=form.access_token.data, lookup=_number_lookup())
        except connections.ConnectRefused as exc:
            if exc.field:
                getattr(form, exc.field).errors.append(exc.message)
            else:
                connect_error = exc.message
        else:
            number = connected.number
            verb = {"number.connected": "is connected", "number.reconnected": "is connected again",
                    "number.token_replaced": "now uses the new token"}[connected.action]
            flash(f"{number.display_number} ({number.verified_name or 'no verified name'}) {verb}.", "success")
            return redirect(url_for("portal.numbers"), 303)
    status = 400 if (form.errors or connect_error) else 200
    return render_template("portal/numbers.html", form=form, connect_error=connect_error,
                           numbers=numbers_for(tenant, include_disconnected=True),
                           allowance=connections.allowance(tenant), button_form=ConfirmForm()), status


@bp.post("/numbers/<number_id>/test")
@tenant_required
@allowed("numbers")
def test_number(tenant, number_id):
    from saas.messaging import connections

    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        outcome = connections.check_number(tenant, current_user, number_id, lookup=_number_lookup())
    except NotFound:
        abort(404)
    number = outcome.number
    if outcome.ok:
        flash(f"{number.display_number} answers: {number.verified_name or 'no verified name'}, quality "
              f"{number.quality_rating or 'unknown'}, messaging limit {number.messaging_limit_tier or 'unknown'}.",
              "success")
    else:
        flash(f"Testing {number.display_number} failed: {outcome.error}", "error")
    return redirect(url_for("portal.numbers"), 303)


@bp.route("/numbers/<number_id>/disconnect", methods=["GET", "POST"])
@tenant_required
@allowed("numbers")
def disconnect_number(tenant, number_id):
    from saas.messaging import connections

    form = ConfirmForm()
    try:
        if request.method == "GET":
            return render_template("portal/number_disconnect.html", form=form,
                                   number=connections.connected_live_number(tenant, number_id))
        if not form.validate_on_submit():
            abort(400)
        number = connections.disconnect_number(tenant, current_user, number_id)
    except NotFound:
        abort(404)
    flash(f"{number.display_number} is disconnected: it sends nothing more, and its messages are kept.", "info")
    return redirect(url_for("portal.numbers"), 303)

