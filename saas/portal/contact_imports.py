"""Importing contacts from a CSV: upload (with the opt-in, when the contacts gave one), map the file's columns,
watch the progress, download the rows that were refused."""
from __future__ import annotations

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_login import current_user

from saas.contacts import attributes, export, imports
from saas.errors import InvalidRequest, NotFound, PayloadTooLarge
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.portal.access import allowed, tenant_required
from saas.portal.contact_forms import ImportForm, show_problem
from saas.portal.forms import ConfirmForm
from saas.text import inert

bp = Blueprint("contact_imports", __name__)

# The page of a running import reloads itself this often (a meta refresh: no script needed).
REFRESH_SECONDS = 2


def _form(tenant) -> ImportForm:
    form = ImportForm()
    form.phone_number_id.choices = [("", "Choose a number")] + [
        (number.phone_number_id, number.display_number) for number in numbers_for(tenant)]
    return form


@bp.route("/contacts/import", methods=["GET", "POST"])
@tenant_required
@allowed("contacts")
def index(tenant):
    form = _form(tenant)
    status = 400 if request.method == "POST" else 200
    if form.validate_on_submit():
        upload = form.file.data
        if upload is None or not getattr(upload, "filename", None):
            form.file.errors = ["Choose the CSV file to import."]
        else:
            limit = current_app.config["CONTACT_IMPORT_MAX_BYTES"]
            try:
                row = imports.receive(tenant, filename=inert(upload.filename)[:200],
                                      content=upload.stream.read(limit + 1), limit=limit, auto_map=False,
                                      opt_in=form.opt_in.data,
                                      proof=form.consent_proof.data or None,
                                      phone_number_id=form.phone_number_id.data or None, actor=current_user.email)
            except PayloadTooLarge as exc:
                form.file.errors, status = [exc.message], 413
            except InvalidRequest as exc:
                show_problem(form, exc, fallback="file")
            else:
                return redirect(url_for("portal.contact_imports.show", import_id=row.id))
    return render_template("portal/contacts/import.html", form=form, recent=imports.recent(tenant)), status


def _owned(tenant, import_id):
    try:
        return imports.get(tenant, import_id)
    except NotFound:
        abort(404)


def _mapping_page(tenant, row, *, chosen=None, problem=None, status=200):
    header = imports.header_of(row)
    kinds = attributes.definitions(tenant.id)
    chosen = chosen if chosen is not None else imports.guess_mapping(header, kinds)
    targets = [("", "Skip"), ("wa_id", "WhatsApp number"), ("name", "Name"), ("labels", "Labels")] + [
        (f"attr:{key}", f"Attribute: {key} ({kind})") for key, kind in kinds.items()]
    return render_template("portal/contacts/import_mapping.html", row=row, header=header, chosen=chosen,
                           targets=targets, problem=problem, form=ConfirmForm()), status


@bp.get("/contacts/import/<import_id>")
@tenant_required
@allowed("contacts")
def show(tenant, import_id):
    row = _owned(tenant, import_id)
    if row.status == imports.UPLOADED:
        return _mapping_page(tenant, row)
    running = row.status in (imports.QUEUED, imports.RUNNING)
    return render_template("portal/contacts/import_show.html", row=row,
                           refresh=REFRESH_SECONDS if running else None)


@bp.post("/contacts/import/<import_id>/mapping")
@tenant_required
@allowed("contacts")
def mapping(tenant, import_id):
    row = _owned(tenant, import_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    header = imports.header_of(row)
    chosen = {column: request.form.get(f"column-{index}", "") for index, column in enumerate(header) if column}
    try:
        imports.map_columns(tenant, row.id, chosen)
    except InvalidRequest as exc:
        db.session.rollback()
        reasons = [reason for reasons in (exc.details or {}).values() for reason in reasons] or [exc.message]
        return _mapping_page(tenant, _owned(tenant, import_id), chosen=chosen, problem=" ".join(reasons), status=400)
    flash("The import has started.", "success")
    return redirect(url_for("portal.contact_imports.show", import_id=row.id))


@bp.get("/contacts/import/<import_id>/errors.csv")
@tenant_required
@allowed("contacts")
def errors_csv(tenant, import_id):
    row = _owned(tenant, import_id)
    return Response(stream_with_context(export.import_errors_csv(db.session, row.id)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="import-{row.id}-errors.csv"'})
