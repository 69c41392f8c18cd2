"""The tenant's phone numbers: connect a live number (or give it a new token), test one, disconnect one."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from saas.errors import NotFound
from saas.messaging.numbers import connections
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm, ConnectNumberForm

bp = Blueprint("numbers", __name__)

# What the tenant is told a connection did (saas.messaging.numbers.connections).
CONNECTED = {"number.connected": "is connected", "number.reconnected": "is connected again",
             "number.token_replaced": "now uses the new token"}


def _number_lookup():
    return current_app.extensions["number_info"]


@bp.route("/numbers", methods=["GET", "POST"])
@tenant_required
@allowed("numbers")
def index(tenant):
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
            flash(f"{number.display_number} ({number.verified_name or 'no verified name'}) "
                  f"{CONNECTED[connected.action]}.", "success")
            return redirect(url_for("portal.numbers.index"), 303)
    status = 400 if (form.errors or connect_error) else 200
    return render_template("portal/numbers.html", form=form, connect_error=connect_error,
                           numbers=numbers_for(tenant, include_disconnected=True),
                           allowance=connections.allowance(tenant), button_form=ConfirmForm()), status


@bp.post("/numbers/<number_id>/test")
@tenant_required
@allowed("numbers")
def test(tenant, number_id):
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
    return redirect(url_for("portal.numbers.index"), 303)


@bp.route("/numbers/<number_id>/disconnect", methods=["GET", "POST"])
@tenant_required
@allowed("numbers")
def disconnect(tenant, number_id):
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
    return redirect(url_for("portal.numbers.index"), 303)
