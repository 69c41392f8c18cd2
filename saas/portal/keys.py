"""The tenant's API keys: create one (shown once), list them, revoke one."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from saas.errors import NotFound
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ApiKeyForm, ConfirmForm
from saas.tenants import services as accounts
from saas.urls import no_store, public_base

bp = Blueprint("keys", __name__)


@bp.route("/keys", methods=["GET", "POST"])
@tenant_required
@allowed("keys")
@no_store
def index(tenant):
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
def revoke(tenant, key_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        key = accounts.revoke_api_key(tenant, key_id, actor=current_user)
    except NotFound:
        abort(404)
    flash(f"Key {key.prefix}… is revoked; requests with it now fail.", "info")
    return redirect(url_for("portal.keys.index"))
