"""The tenant's contacts: the list (search, filter by label, bulk labels), a contact's page (attributes,
labels, history), creating, editing and erasing one, and the CSV export of what the list shows."""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user

from saas.billing import entitlements
from saas.contacts import attributes, contacts, export, history, labels, queries, values
from saas.contacts.models import SOURCE_PORTAL
from saas.contacts.values import FieldProblem
from saas.errors import InvalidRequest, NotFound, PaymentRequired, QuotaExceeded
from saas.extensions import db
from saas.ids import parse_id
from saas.portal.access import allowed, tenant_required
from saas.portal.contact_forms import BulkLabelForm, ContactForm, EditContactForm, show_problem
from saas.portal.forms import ConfirmForm
from saas.text import problem

bp = Blueprint("contacts", __name__)

PAGE = 50


def _filters() -> tuple[queries.Filters, str | None]:
    """The list's filters from the query string, and why one was ignored (shown above the list)."""
    search = (request.args.get("q") or "").strip()[:100] or None
    label = (request.args.get("label") or "").strip() or None
    ignored = None
    if search and problem(search):
        search, ignored = None, "The search held characters that cannot be searched for."
    if label:
        try:
            label = values.label(label, "label")
        except FieldProblem:
            label, ignored = None, "That label cannot exist, so it was not used."
    return queries.Filters(label=label, search=search), ignored


@bp.get("/contacts")
@tenant_required
@allowed("contacts")
def index(tenant):
    filters, ignored = _filters()
    before = parse_id(request.args.get("before")) if request.args.get("before") else None
    rows, has_more = queries.page(tenant, filters, limit=PAGE, before=before)
    return render_template("portal/contacts/index.html", contacts=rows, filters=filters, ignored=ignored,
                           labelled=labels.labels_of(db.session, tenant.id, [row.id for row in rows]),
                           labels_in_use=labels.in_use(tenant), older=rows[-1].id if has_more else None,
                           bulk=BulkLabelForm(), limit=entitlements.for_tenant(tenant).effective.max_contacts)


@bp.post("/contacts/labels")
@tenant_required
@allowed("contacts")
def bulk_labels(tenant):
    form = BulkLabelForm()
    ids = request.form.getlist("contact_ids")[: labels.MAX_BULK]
    back = request.form.get("back") if (request.form.get("back") or "").startswith("/contacts") else None
    if not form.validate_on_submit():
        flash(" ".join(error for errors in form.errors.values() for error in errors), "error")
    elif not ids:
        flash("Tick the contacts to label first.", "error")
    else:
        try:
            label = values.label(form.label.data)
            changed = labels.bulk(tenant, ids, add_labels=[label] if form.action.data == "add" else [],
                                  remove_labels=[label] if form.action.data == "remove" else [],
                                  actor=current_user.email, source=SOURCE_PORTAL)
        except InvalidRequest as exc:
            flash(" ".join(reason for reasons in (exc.details or {}).values() for reason in reasons), "error")
        else:
            verb = "added to" if form.action.data == "add" else "removed from"
            flash(f"“{label}” {verb} {changed['contacts']} contact{'s' if changed['contacts'] != 1 else ''}.",
                  "success")
    return redirect(back or url_for("portal.contacts.index"))


def _attribute_values(kinds: dict[str, str]) -> dict:
    """The attribute inputs of a contact's form (``attr-<key>``), as typed text (empty: none)."""
    return {key: request.form.get(f"attr-{key}", "") for key in kinds}


def _attribute_errors(exc: InvalidRequest) -> dict[str, list[str]]:
    return {name.split(".", 1)[1]: reasons for name, reasons in (exc.details or {}).items()
            if isinstance(name, str) and name.startswith("attributes.")}


def _form_page(tenant, form, contact=None, *, typed=None, attribute_errors=None, status=200):
    kinds = attributes.definitions(tenant.id)
    shown = typed if typed is not None else {key: _as_text((contact.attributes or {}).get(key)) if contact else ""
                                             for key in kinds}
    return render_template("portal/contacts/form.html", form=form, contact=contact, kinds=kinds, typed=shown,
                           attribute_errors=attribute_errors or {}), status


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _typed_attributes(kinds: dict[str, str], typed: dict[str, str], current: dict) -> dict:
    """The form's attribute inputs as the service's changes (InvalidRequest names every bad one)."""
    after = attributes.changed(current, typed, kinds, from_text=True)
    return {key: after.get(key) for key in typed}


@bp.route("/contacts/new", methods=["GET", "POST"])
@tenant_required
@allowed("contacts")
def new(tenant):
    form = ContactForm()
    if not form.validate_on_submit():
        return _form_page(tenant, form, typed=_attribute_values(attributes.definitions(tenant.id))
                          if request.method == "POST" else None, status=400 if form.errors else 200)
    kinds = attributes.definitions(tenant.id)
    typed = _attribute_values(kinds)
    try:
        given = contacts.ContactInput(wa_id=values.wa_id(form.wa_id.data), name=values.name(form.name.data),
                                      labels=values.labels(form.labels.data or ""),
                                      attributes=_typed_attributes(kinds, typed, {}))
        contact = contacts.create(tenant, entitlements.for_tenant(tenant), given, source=SOURCE_PORTAL,
                                  actor=current_user.email)
    except contacts.ContactExists as exc:
        existing = url_for("portal.contacts.show", contact_id=exc.details["contact_id"])
        form.wa_id.errors = list(form.wa_id.errors) + [f"You have this contact already: {existing}"]
        return _form_page(tenant, form, typed=typed, status=409)
    except (QuotaExceeded, PaymentRequired) as exc:
        flash(exc.message, "error")
        return _form_page(tenant, form, typed=typed, status=402)
    except InvalidRequest as exc:
        show_problem(form, exc)
        return _form_page(tenant, form, typed=typed, attribute_errors=_attribute_errors(exc), status=400)
    flash("Contact saved.", "success")
    return redirect(url_for("portal.contacts.show", contact_id=contact.id))


def _owned(tenant, contact_id):
    try:
        return contacts.get(tenant, contact_id)
    except NotFound:
        abort(404)


@bp.get("/contacts/<contact_id>")
@tenant_required
@allowed("contacts")
def show(tenant, contact_id):
    contact = _owned(tenant, contact_id)
    return render_template("portal/contacts/show.html", contact=contact, kinds=attributes.definitions(tenant.id),
                           labels=labels.labels_of(db.session, tenant.id, [contact.id]).get(contact.id, []),
                           events=history.entries(db.session, tenant.id, contact.id, limit=100))


@bp.route("/contacts/<contact_id>/edit", methods=["GET", "POST"])
@tenant_required
@allowed("contacts")
def edit(tenant, contact_id):
    contact = _owned(tenant, contact_id)
    current = labels.labels_of(db.session, tenant.id, [contact.id]).get(contact.id, [])
    form = EditContactForm(data={"name": contact.name or "", "labels": "; ".join(current)})
    if not form.validate_on_submit():
        return _form_page(tenant, form, contact, typed=_attribute_values(attributes.definitions(tenant.id))
                          if request.method == "POST" else None, status=400 if form.errors else 200)
    kinds = attributes.definitions(tenant.id)
    typed = _attribute_values(kinds)
    try:
        given = contacts.ContactInput(name=values.name(form.name.data), labels=values.labels(form.labels.data or ""),
                                      attributes=_typed_attributes(kinds, typed, contact.attributes or {}))
        contacts.update(tenant, contact.id, given, source=SOURCE_PORTAL, actor=current_user.email)
    except InvalidRequest as exc:
        show_problem(form, exc)
        return _form_page(tenant, form, contact, typed=typed, attribute_errors=_attribute_errors(exc), status=400)
    flash("Contact saved.", "success")
    return redirect(url_for("portal.contacts.show", contact_id=contact.id))


@bp.route("/contacts/<contact_id>/delete", methods=["GET", "POST"])
@tenant_required
@allowed("contacts")
def delete(tenant, contact_id):
    contact = _owned(tenant, contact_id)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        contacts.erase(tenant, contact.id, actor=current_user, source=SOURCE_PORTAL)
        flash("The contact and its personal data are erased; the messages it was billed for stay.", "success")
        return redirect(url_for("portal.contacts.index"))
    return render_template("portal/contacts/delete.html", contact=contact, form=form)


@bp.get("/contacts/export.csv")
@tenant_required
@allowed("contacts")
def export_csv(tenant):
    filters, _ = _filters()
    return Response(stream_with_context(export.contacts_csv(db.session, tenant.id, filters)), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="contacts.csv"'})
