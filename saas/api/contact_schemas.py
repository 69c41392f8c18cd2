"""Marshmallow schemas of the contacts API's bodies and query strings: each input bounded to its column
(the contacts services check what the values mean: a number, a label, an attribute's type)."""
from __future__ import annotations

from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from saas.api.schemas import Pagination
from saas.contacts.models import ATTRIBUTE_TYPES

ATTRIBUTE_KEY = validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$", error="1 to 40 lowercase letters, digits or underscores, "
                                                                  "starting with a letter.")
AttributeValue = fields.Raw(allow_none=True, metadata={
    "description": "As the attribute's type: a string (text, at most 500 characters), a number, true or false, "
                   "or a date as YYYY-MM-DD; null removes it.",
    "anyOf": [{"type": "string", "maxLength": 500}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]})


def _attributes():
    return fields.Dict(keys=fields.String(validate=ATTRIBUTE_KEY), values=AttributeValue,
                       metadata={"description": "Defined attribute keys and values.", "maxProperties": 100})


def _labels():
    return fields.List(fields.String(validate=validate.Length(min=1, max=50)), validate=validate.Length(max=50),
                       metadata={"description": "Labels, lowercase once stored (letters, digits, spaces, - _ . :)."})


class Moment(fields.Field):
    """An ISO 8601 date or date and time, as naive UTC (the form every DateTime column holds)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            if not isinstance(value, str) or len(value) > 40:
                raise ValueError(value)
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("A date or time in ISO 8601, such as 2026-01-31 or 2026-01-31T09:00:00Z.") from None
        return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


class Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class ContactCreate(Strict):
    """POST /api/v1/contacts: a WhatsApp id (a phone number with its country code) or Meta's user id."""

    wa_id = fields.String(validate=validate.Length(min=1, max=40), metadata={"example": "+90 532 123 45 67"})
    user_id = fields.String(validate=validate.Length(min=1, max=100))
    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    attributes = _attributes()
    labels = _labels()


class ContactUpdate(Strict):
    """PATCH /api/v1/contacts/{id}: what is given changes; attributes merge (null removes one), labels replace."""

    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    attributes = _attributes()
    labels = _labels()


class LabelChange(Strict):
    """POST /api/v1/contacts/labels: labels added to and removed from up to 1,000 contacts."""

    contact_ids = fields.List(fields.Integer(strict=True), required=True, validate=validate.Length(min=1, max=1000))
    add = _labels()
    remove = _labels()


class AttributeDefinition(Strict):
    key = fields.String(required=True, validate=ATTRIBUTE_KEY)
    type = fields.String(required=True, validate=validate.OneOf(ATTRIBUTE_TYPES))


class ContactQuery(Pagination):
    """GET /api/v1/contacts and /export: the filters, every one optional."""

    label = fields.String(validate=validate.Length(min=1, max=50))
    q = fields.String(validate=validate.Length(min=1, max=100),
                      metadata={"description": "A name containing this (any case), or a number starting with it."})
    country = fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$"), metadata={"example": "TR"})
    has_attribute = fields.String(validate=ATTRIBUTE_KEY)
    created_since = Moment(metadata={"type": "string", "maxLength": 40, "example": "2026-01-31T09:00:00Z",
                                     "description": "Contacts created at or after this date or time (UTC if no "
                                                    "offset is given)."})


class ExportQuery(ContactQuery):
    class Meta:
        exclude = ("limit", "before")


class ImportForm(Strict):
    """POST /api/v1/contacts/import (multipart/form-data, beside the file)."""

    mapping = fields.String(validate=validate.Length(max=20000), metadata={
        "description": 'JSON: {"CSV column": "wa_id" | "name" | "labels" | "attr:<key>" | ""}; without it the '
                       "columns are mapped by their names (wa_id/phone, name, labels, attr:<key>)."})
    opt_in = fields.Boolean(load_default=False)
    consent_proof = fields.String(validate=validate.Length(min=1, max=1000))
    phone_number_id = fields.String(validate=validate.Length(min=1, max=64))

    @pre_load
    def drop_empty(self, data, **kwargs):
        return {k: v for k, v in data.items() if v != ""}
