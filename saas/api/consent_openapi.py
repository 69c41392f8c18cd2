"""The consent calls' part of the OpenAPI document (saas.api.openapi adds it): request bodies are the schemas
saas.api.consent loads with, responses what it writes."""
from __future__ import annotations

from marshmallow import Schema, fields

from saas.api.consent import ConsentChange, KeywordList
from saas.contacts.consent import records

STATE = {"enum": list(records.STATES)}


class NumberConsent(Schema):
    phone_number_id = fields.String(required=True)
    display_phone_number = fields.String(required=True)
    state = fields.String(required=True, allow_none=True, metadata={
        **STATE, "description": "null: nothing recorded (a marketing template is refused unless your plan leaves "
                                "consent to you)."})
    source = fields.String(required=True, allow_none=True, metadata={
        "description": "api, form, portal, import, keyword (the contact sent STOP, START ...) or whatsapp (Meta's "
                       "user_preferences webhook, or error 131050)."})
    actor = fields.String(required=True, allow_none=True)
    proof = fields.String(required=True, allow_none=True)
    changed_at = fields.String(required=True, allow_none=True)


class ConsentChangeEntry(Schema):
    id = fields.Integer(required=True)
    state = fields.String(required=True, metadata=STATE)
    previous = fields.String(required=True, allow_none=True)
    phone_number_id = fields.String(required=True, allow_none=True)
    display_phone_number = fields.String(required=True, allow_none=True)
    source = fields.String(required=True, allow_none=True)
    actor = fields.String(required=True, allow_none=True)
    proof = fields.String(required=True, allow_none=True)
    at = fields.String(required=True)


class ContactConsent(Schema):
    object = fields.String(required=True, metadata={"enum": ["contact_consent"]})
    contact_id = fields.Integer(required=True)
    wa_id = fields.String(required=True, allow_none=True)
    numbers = fields.List(fields.Nested(NumberConsent), required=True)
    history = fields.List(fields.Nested(ConsentChangeEntry), required=True, metadata={
        "description": "Consent changes, newest first (the latest 100)."})
    changed = fields.Boolean(metadata={"description": "Whether the state changed (false: it already was)."})


class Keyword(Schema):
    keyword = fields.String(required=True)
    action = fields.String(required=True, metadata=STATE)


class ConsentKeywords(Schema):
    object = fields.String(required=True, metadata={"enum": ["consent_keywords"]})
    defaults = fields.Boolean(required=True, metadata={"description": "Whether these are the defaults."})
    keywords = fields.List(fields.Nested(Keyword), required=True)


SCHEMAS = [("ConsentChange", ConsentChange), ("ContactConsent", ContactConsent),
           ("KeywordList", KeywordList), ("ConsentKeywords", ConsentKeywords)]


def add_paths(spec, ok, errors, read_errors) -> None:
    """The consent calls in ``spec``; ``ok(schema)``, ``errors(codes)`` and ``read_errors`` as the document's own."""
    for name, schema in SCHEMAS:
        spec.components.schema(name, schema=schema)
    contact = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 40}}
    spec.path("/api/v1/contacts/{contact_id}/consent", operations={
        "get": {"operationId": "getContactConsent", "summary": "A contact's consent per number, and its history",
                "parameters": [contact], "responses": {"200": ok("ContactConsent"), **errors(read_errors)}},
        "post": {"operationId": "recordContactConsent", "summary": "Record an opt-in (with its proof) or an opt-out",
                 "description": "For one of your numbers. A repeat of the current state changes nothing "
                                "(`changed: false`, the first proof kept).",
                 "parameters": [contact],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": "ConsentChange"}}},
                 "responses": {"200": ok("ContactConsent"), **errors(read_errors)}},
    })
    spec.path("/api/v1/consent/keywords", operations={
        "get": {"operationId": "getConsentKeywords", "summary": "The words that opt a contact out (or in)",
                "responses": {"200": ok("ConsentKeywords"), **errors(read_errors)}},
        "put": {"operationId": "replaceConsentKeywords", "summary": "Replace the keyword list",
                "description": "Compared with the message's whole text, case- and accent-blind, Turkish dotted "
                               "and dotless i alike. An empty list restores the defaults (English and Turkish).",
                "requestBody": {"required": True, "content": {"application/json": {"schema": "KeywordList"}}},
                "responses": {"200": ok("ConsentKeywords"), **errors(read_errors)}},
    })
