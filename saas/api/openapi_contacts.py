"""The contacts API in the OpenAPI document (saas.api.contacts' views): paths, bodies and answers."""
from __future__ import annotations

from apispec import APISpec
from marshmallow import Schema, fields

from saas.api import contact_schemas as bodies
from saas.api.openapi_responses import errors, ok
from saas.ids import MAX_ID

CONTACT_ERRORS = {
    402: "The plan stores no more contacts (`details.metric` is contacts), or its rights are withheld for payment.",
    409: "The account has a contact with this WhatsApp id or user id already (`details.contact_id`).",
    413: "The file is larger than CONTACT_IMPORT_MAX_BYTES.",
}
READ = WRITE = (400, 401, 403, 404, 405, 413, 429)


class Contact(Schema):
    id = fields.Integer(required=True, metadata={"minimum": 1})
    object = fields.String(required=True, metadata={"enum": ["contact"]})
    wa_id = fields.String(required=True, allow_none=True, metadata={"description": "Digits with the country code."})
    user_id = fields.String(required=True, allow_none=True)
    name = fields.String(required=True, allow_none=True)
    country = fields.String(required=True, allow_none=True, metadata={"description": "ISO 3166 region, e.g. TR."})
    attributes = fields.Dict(required=True, keys=fields.String(), values=fields.Raw())
    labels = fields.List(fields.String(), required=True)
    source = fields.String(required=True, metadata={"enum": ["api", "import", "inbound", "portal"]})
    last_inbound_at = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class ContactList(Schema):
    data = fields.List(fields.Nested(Contact), required=True)
    has_more = fields.Boolean(required=True)
    next = fields.String(metadata={"description": "The next page's path (filters kept), when has_more."})


class Deleted(Schema):
    id = fields.Integer(required=True)
    object = fields.String(required=True)
    deleted = fields.Boolean(required=True)


class LabelUse(Schema):
    label = fields.String(required=True)
    contacts = fields.Integer(required=True)


class LabelsInUse(Schema):
    data = fields.List(fields.Nested(LabelUse), required=True)


class LabelsChanged(Schema):
    contacts = fields.Integer(required=True, metadata={"description": "Contacts whose labels changed."})
    added = fields.Integer(required=True)
    removed = fields.Integer(required=True)
    not_found = fields.Integer(required=True, metadata={"description": "Ids that name none of the account's."})


class Attribute(Schema):
    object = fields.String(required=True)
    key = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": ["text", "number", "boolean", "date"]})
    created_at = fields.String(required=True)


class AttributeList(Schema):
    data = fields.List(fields.Nested(Attribute), required=True)


class AttributeRemoved(Schema):
    key = fields.String(required=True)
    object = fields.String(required=True)
    deleted = fields.Boolean(required=True)
    contacts = fields.Integer(required=True, metadata={"description": "Contacts whose value was removed."})


class ContactImport(Schema):
    id = fields.Integer(required=True)
    object = fields.String(required=True, metadata={"enum": ["contact_import"]})
    status = fields.String(required=True, metadata={"enum": ["uploaded", "queued", "running", "done", "failed"]})
    filename = fields.String(required=True)
    mapping = fields.Dict(required=True, keys=fields.String(), values=fields.String())
    total_rows = fields.Integer(required=True)
    processed_rows = fields.Integer(required=True)
    created = fields.Integer(required=True)
    merged = fields.Integer(required=True, metadata={"description": "Rows merged into a contact stored before, or "
                                                                   "into an earlier row of the same number."})
    failed = fields.Integer(required=True, metadata={"description": "Rows refused; errors_url lists them."})
    error = fields.String(required=True, allow_none=True)
    opt_in = fields.Boolean(required=True)
    created_at = fields.String(required=True)
    finished_at = fields.String(required=True, allow_none=True)
    errors_url = fields.String(required=True)


SCHEMAS = {"ContactCreate": bodies.ContactCreate, "ContactUpdate": bodies.ContactUpdate,
           "LabelChange": bodies.LabelChange, "AttributeDefinition": bodies.AttributeDefinition,
           "Contact": Contact, "ContactList": ContactList, "ContactDeleted": Deleted, "LabelsInUse": LabelsInUse,
           "LabelsChanged": LabelsChanged, "Attribute": Attribute, "AttributeList": AttributeList,
           "AttributeRemoved": AttributeRemoved, "ContactImport": ContactImport}


def _query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


FILTERS = [
    _query("label", {"type": "string", "minLength": 1, "maxLength": 50}, "Contacts with this label."),
    _query("q", {"type": "string", "minLength": 1, "maxLength": 100},
           "A name containing this (any case), or a WhatsApp id starting with these digits."),
    _query("country", {"type": "string", "pattern": "^[A-Za-z]{2}$"}, "ISO 3166 region of the number."),
    _query("has_attribute", {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"}, "Holds a value for this key."),
    _query("created_since", {"type": "string", "maxLength": 40, "example": "2026-01-31"},
           "Created at or after this ISO 8601 date or time (UTC without an offset)."),
]
PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}),
        _query("before", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Only contacts with a smaller id.")]
CSV = {"text/csv": {"schema": {"type": "string"}}}


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 40}}


def _json(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def add(spec: APISpec) -> None:
    """The contacts API's schemas and paths, added to ``spec``."""
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    _contacts(spec)
    _labels_and_attributes(spec)
    _imports(spec)


def _contacts(spec: APISpec) -> None:
    spec.path("/api/v1/contacts", operations={
        "post": {"operationId": "createContact", "summary": "Create a contact",
                 "description": "Keyed by its WhatsApp id (a phone number with its country code) or Meta's user id.",
                 "requestBody": _json("ContactCreate"),
                 "responses": {"201": ok("Contact", "Created; Location names it."),
                               **errors((*WRITE, 402, 409), descriptions=CONTACT_ERRORS)}},
        "get": {"operationId": "listContacts", "summary": "List contacts, newest first, filtered",
                "parameters": PAGE + FILTERS, "responses": {"200": ok("ContactList"), **errors(READ)}},
    })
    spec.path("/api/v1/contacts/{contact_id}", operations={
        "get": {"operationId": "getContact", "summary": "One contact", "parameters": [_path("contact_id")],
                "responses": {"200": ok("Contact"), **errors(READ)}},
        "patch": {"operationId": "updateContact", "summary": "Change a contact's name, attributes or labels",
                  "parameters": [_path("contact_id")], "requestBody": _json("ContactUpdate"),
                  "responses": {"200": ok("Contact"), **errors(WRITE)}},
        "delete": {"operationId": "deleteContact", "summary": "Erase a contact and its personal data",
                   "description": "Its labels, attributes, consent and history go; messages and usage billed stay.",
                   "parameters": [_path("contact_id")],
                   "responses": {"200": ok("ContactDeleted"), **errors(READ)}},
    })
    spec.path("/api/v1/contacts/export", operations={"get": {
        "operationId": "exportContacts", "summary": "The contacts as CSV (streamed), filtered as the list",
        "parameters": FILTERS,
        "responses": {"200": {"description": "wa_id, name, labels, attr:<key> ... (an import reads it back).",
                              "content": CSV}, **errors(READ)}}})


def _labels_and_attributes(spec: APISpec) -> None:
    spec.path("/api/v1/contacts/labels", operations={
        "get": {"operationId": "listLabels", "summary": "Labels in use, with how many contacts carry each",
                "responses": {"200": ok("LabelsInUse"), **errors(READ)}},
        "post": {"operationId": "changeLabels", "summary": "Add and remove labels on up to 1,000 contacts",
                 "requestBody": _json("LabelChange"), "responses": {"200": ok("LabelsChanged"), **errors(WRITE)}},
    })
    spec.path("/api/v1/contacts/attributes", operations={
        "get": {"operationId": "listAttributes", "summary": "The custom attributes contacts may hold",
                "responses": {"200": ok("AttributeList"), **errors(READ)}},
        "post": {"operationId": "defineAttribute", "summary": "Define a custom attribute (text, number, boolean, date)",
                 "requestBody": _json("AttributeDefinition"),
                 "responses": {"201": ok("Attribute", "Defined."), **errors(WRITE)}},
    })
    spec.path("/api/v1/contacts/attributes/{key}", operations={"delete": {
        "operationId": "removeAttribute", "summary": "Remove an attribute and every contact's value of it",
        "parameters": [_path("key")], "responses": {"200": ok("AttributeRemoved"), **errors(READ)}}})


def _imports(spec: APISpec) -> None:
    form = {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV, UTF-8, a header row first."},
        "mapping": {"type": "string", "maxLength": 20000,
                    "description": 'JSON: {"CSV column": "wa_id" | "name" | "labels" | "attr:<key>" | ""}.'},
        "opt_in": {"type": "boolean", "description": "Record the contacts as opted in (needs the two below)."},
        "consent_proof": {"type": "string", "maxLength": 1000, "description": "What they agreed to, and where."},
        "phone_number_id": {"type": "string", "maxLength": 64, "description": "The number they opted in to."}}}
    spec.path("/api/v1/contacts/import", operations={"post": {
        "operationId": "importContacts", "summary": "Import contacts from a CSV, in the background",
        "description": "Rows of one number merge (into a stored contact too); refused rows are kept with why. "
                       "Poll the import (Location) for its progress.",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
        "responses": {"202": ok("ContactImport", "Queued; Location names it."),
                      **errors((400, 401, 403, 404, 405, 413, 429), descriptions=CONTACT_ERRORS)}}})
    spec.path("/api/v1/contacts/import/{import_id}", operations={"get": {
        "operationId": "getContactImport", "summary": "An import's progress and counts",
        "parameters": [_path("import_id")], "responses": {"200": ok("ContactImport"), **errors(READ)}}})
    spec.path("/api/v1/contacts/import/{import_id}/errors", operations={"get": {
        "operationId": "getContactImportErrors", "summary": "An import's refused rows as CSV (row, error, raw)",
        "parameters": [_path("import_id")],
        "responses": {"200": {"description": "The refused rows, in file order.", "content": CSV}, **errors(READ)}}})
