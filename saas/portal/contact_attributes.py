"""The custom attributes a tenant's contacts hold: define one (a key and a type), remove one with its values."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from saas.contacts import attributes
from saas.errors import InvalidRequest, NotFound
from saas.portal.access import allowed, tenant_required
from saas.portal.contact_forms import AttributeForm, show_problem
from saas.portal.forms import ConfirmForm

bp = Blueprint("contact_attributes", __name__)


@bp.route("/contacts/attributes", methods=["GET", "POST"])
@tenant_required
@allowed("contacts")
def index(tenant):
    form = AttributeForm()
    status = 200
    if form.validate_on_submit():
        try:
            row = attributes.define(tenant, form.key.data, form.type.data, actor=current_user)
        except InvalidRequest as exc:
            if not show_problem(form, exc, fallback="key"):
                flash(exc.message, "error")
            status = 400
        else:
            flash(f"Contacts can now hold {row.key} ({row.type}).", "success")
            return redirect(url_for("portal.contact_attributes.index"))
    elif form.errors:
        status = 400
    return render_template("portal/contacts/attributes.html", form=form, confirm=ConfirmForm(),
                           definitions=attributes.definition_rows(tenant)), status


@bp.post("/contacts/attributes/<key>/remove")
@tenant_required
@allowed("contacts")
def remove(tenant, key):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        holders = attributes.remove(tenant, key, actor=current_user)
    except NotFound:
        abort(404)
    flash(f"{key} is removed, and its value from {holders} contact{'s' if holders != 1 else ''}.", "success")
    return redirect(url_for("portal.contact_attributes.index"))
