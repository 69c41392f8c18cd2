"""/api/v1/contacts: a tenant's contacts, labels, custom attributes, CSV imports and exports (saas.api.routes
registers these views on the API blueprint: its key check, rate limit and error envelope apply).

  POST   /contacts                        create                GET  /contacts              list, filtered, paged
  GET    /contacts/{id}                   one                   PATCH /contacts/{id}        change
  DELETE /contacts/{id}                   erase its personal data
  GET    /contacts/labels                 labels in use         POST /contacts/labels       add/remove in bulk
  GET    /contacts/attributes             definitions           POST /contacts/attributes   define one
  DELETE /contacts/attributes/{key}       remove one (and its values)
  POST   /contacts/import                 upload a CSV (202)    GET  /contacts/import/{id}  progress
  GET    /contacts/import/{id}/errors     refused rows (CSV)    GET  /contacts/export       contacts (CSV)
"""
from __future__ import annotations

import json
from flask import Response, current_app, g, jsonify, request, stream_with_context, url_for

from saas.api import contact_schemas as schemas
from saas.api.requests import current_rights, current_tenant, json_object, load
from saas.api.serializers import attribute_json, contact_json, import_json
from saas.contacts import attributes, contacts, export, imports, labels, queries, values
from saas.contacts.models import SOURCE_API
from saas.contacts.values import FieldProblem
from saas.extensions import db
from saas.messaging.outbound.payloads import json_problem
from saas.text import inert, problem

create_body, update_body = schemas.ContactCreate(), schemas.ContactUpdate()
label_body, attribute_body = schemas.LabelChange(), schemas.AttributeDefinition()
list_query, export_query, import_form = schemas.ContactQuery(), schemas.ExportQuery(), schemas.ImportForm()


def _actor() -> str:
    return f"api key #{g.api_key_id}"


def _given(data: dict) -> contacts.ContactInput:
    """The body's fields as the contacts services take them, each checked (FieldProblem names a bad one)."""
    return contacts.ContactInput(
        wa_id=values.wa_id(data["wa_id"]) if "wa_id" in data else None,
        user_id=values.user_id(data["user_id"]) if "user_id" in data else None,
        name=values.name(data["name"]) if "name" in data else contacts.UNSET,
        attributes=data.get("attributes"),
        labels=values.labels(data["labels"]) if "labels" in data else None)


def _one(contact, status: int = 200):
    found = labels.labels_of(db.session, contact.tenant_id, [contact.id])
    response = jsonify(contact_json(contact, found.get(contact.id, [])))
    response.status_code = status
    return response


def create_contact():
    tenant = current_tenant()
    given = _given(load(create_body, json_object()))
    contact = contacts.create(tenant, current_rights(), given, source=SOURCE_API, actor=_actor())
    response = _one(contact, 201)
    response.headers["Location"] = url_for("api.get_contact", contact_id=contact.id)
    return response


def filters_of(args: dict) -> queries.Filters:
    """The query string's filters, checked; FieldProblem names a bad one."""
    for name in ("q", "label"):
        found = problem(args.get(name))
        if found:
            raise FieldProblem(name, found)
    return queries.Filters(
        label=values.label(args["label"], "label") if args.get("label") else None,
        search=args.get("q"), country=args["country"].upper() if args.get("country") else None,
        has_attribute=args.get("has_attribute"),
        created_since=args.get("created_since"))


def list_contacts():
    tenant = current_tenant()
    args = load(list_query, request.args.to_dict())
    filters = filters_of(args)
    rows, has_more = queries.page(tenant, filters, limit=args["limit"], before=args.get("before"))
    found = labels.labels_of(db.session, tenant.id, [row.id for row in rows])
    body = {"data": [contact_json(row, found.get(row.id, [])) for row in rows], "has_more": has_more}
    if has_more:
        body["next"] = url_for("api.list_contacts", limit=args["limit"], before=rows[-1].id, **filters.as_query())
    return jsonify(body)


def get_contact(contact_id):
    return _one(contacts.get(current_tenant(), contact_id))


def update_contact(contact_id):
    tenant = current_tenant()
    contact = contacts.get(tenant, contact_id)  # an unknown id is 404 before its body is judged
    given = _given(load(update_body, json_object()))
    return _one(contacts.update(tenant, contact.id, given, source=SOURCE_API, actor=_actor()))


def delete_contact(contact_id):
    erased = contacts.erase(current_tenant(), contact_id, actor=_actor(), source=SOURCE_API)
    return jsonify({"id": erased, "object": "contact", "deleted": True})


def labels_in_use():
    return jsonify({"data": [{"label": label, "contacts": count} for label, count in labels.in_use(current_tenant())]})


def change_labels():
    data = load(label_body, json_object())
    changed = labels.bulk(current_tenant(), data["contact_ids"], add_labels=values.labels(data.get("add", []), "add"),
                          remove_labels=values.labels(data.get("remove", []), "remove"), actor=_actor(),
                          source=SOURCE_API)
    return jsonify(changed)


def list_attributes():
    return jsonify({"data": [attribute_json(row) for row in attributes.definition_rows(current_tenant())]})


def define_attribute():
    data = load(attribute_body, json_object())
    row = attributes.define(current_tenant(), data["key"], data["type"], actor=_actor())
    response = jsonify(attribute_json(row))
    response.status_code = 201
    return response


def remove_attribute(key):
    holders = attributes.remove(current_tenant(), key, actor=_actor())
    return jsonify({"key": key, "object": "contact_attribute", "deleted": True, "contacts": holders})


def start_import():
    tenant = current_tenant()
    limit = current_app.config["CONTACT_IMPORT_MAX_BYTES"]
    upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    if upload is None:
        raise FieldProblem("file", "Send the CSV as multipart/form-data, in the field file.")
    content = upload.stream.read(limit + 1)
    form = load(import_form, request.form.to_dict())
    for name in ("consent_proof", "phone_number_id"):
        if problem(form.get(name), allow="\r\n\t"):
            raise FieldProblem(name, problem(form.get(name), allow="\r\n\t"))
    row = imports.receive(tenant, filename=inert(upload.filename or "")[:200], content=content, limit=limit,
                          mapping=_mapping(form.get("mapping")), opt_in=form["opt_in"],
                          proof=form.get("consent_proof"), phone_number_id=form.get("phone_number_id"),
                          actor=_actor())
    response = jsonify(import_json(row))
    response.status_code = 202
    response.headers["Location"] = url_for("api.import_progress", import_id=row.id)
    return response


def _mapping(raw: str | None):
    if raw is None:
        return None
    try:
        mapping = json.loads(raw)
    except (ValueError, RecursionError):
        raise FieldProblem("mapping", "Not valid JSON.") from None
    if not isinstance(mapping, dict) or json_problem(mapping):
        raise FieldProblem("mapping", 'A JSON object: {"CSV column": "wa_id" | "name" | "labels" | "attr:<key>" '
                                      '| ""}.')
    return mapping


def import_progress(import_id):
    return jsonify(import_json(imports.get(current_tenant(), import_id)))


def import_errors(import_id):
    row = imports.get(current_tenant(), import_id)
    return _csv(export.import_errors_csv(db.session, row.id), f"import-{row.id}-errors.csv")


def export_contacts():
    tenant = current_tenant()
    filters = filters_of(load(export_query, request.args.to_dict()))
    return _csv(export.contacts_csv(db.session, tenant.id, filters), "contacts.csv")


def _csv(chunks, filename: str) -> Response:
    return Response(stream_with_context(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def register(bp) -> None:
    """Add these views to the API blueprint."""
    rules = [("/contacts", "create_contact", create_contact, "POST"),
             ("/contacts", "list_contacts", list_contacts, "GET"),
             ("/contacts/labels", "labels_in_use", labels_in_use, "GET"),
             ("/contacts/labels", "change_labels", change_labels, "POST"),
             ("/contacts/attributes", "list_attributes", list_attributes, "GET"),
             ("/contacts/attributes", "define_attribute", define_attribute, "POST"),
             ("/contacts/attributes/<key>", "remove_attribute", remove_attribute, "DELETE"),
             ("/contacts/import", "start_import", start_import, "POST"),
             ("/contacts/import/<import_id>", "import_progress", import_progress, "GET"),
             ("/contacts/import/<import_id>/errors", "import_errors", import_errors, "GET"),
             ("/contacts/export", "export_contacts", export_contacts, "GET"),
             ("/contacts/<contact_id>", "get_contact", get_contact, "GET"),
             ("/contacts/<contact_id>", "update_contact", update_contact, "PATCH"),
             ("/contacts/<contact_id>", "delete_contact", delete_contact, "DELETE")]
    for path, endpoint, view, method in rules:
        bp.add_url_rule(path, endpoint, view, methods=[method])
