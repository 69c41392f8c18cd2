"""/api/v1 consent: a contact's opt-in or opt-out per number with its history, and the tenant's keywords.

A blueprint nested in the API's (saas.api.routes), so every call is authenticated, rate-limited and
answered in the API's error envelope like the others.
"""
from __future__ import annotations

from flask import Blueprint, g, jsonify
from marshmallow import ValidationError, fields, validate, validates_schema

from saas.api.requests import current_tenant, json_object, load
from saas.contacts.consent import keywords, records, services
from saas.contacts.models import OPTED_IN, SOURCE_API, SOURCE_FORM
from saas.errors import InvalidRequest
from saas.messaging.outbound.payloads import Lenient
from saas.timeutil import iso

bp = Blueprint("consent", __name__)


class ConsentChange(Lenient):
    """POST /api/v1/contacts/{id}/consent."""

    phone_number_id = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "The number the consent is for (see GET /api/v1/numbers)."})
    state = fields.String(required=True, validate=validate.OneOf(records.STATES))
    proof = fields.String(validate=validate.Length(max=records.PROOF_LENGTH), metadata={
        "description": "What the contact agreed to, when and where (the form's wording, the page, the "
                       "checkbox). Required for an opt-in."})
    source = fields.String(load_default=SOURCE_API, validate=validate.OneOf((SOURCE_API, SOURCE_FORM)), metadata={
        "description": "api: recorded by your system; form: the contact filled in a form of yours."})

    @validates_schema
    def opt_in_needs_proof(self, data, **kwargs):
        if data.get("state") == OPTED_IN and not (data.get("proof") or "").strip():
            raise ValidationError("Required for an opt-in: what the contact agreed to, when and where.", "proof")


class KeywordEntry(Lenient):
    keyword = fields.String(required=True, validate=validate.Length(min=1, max=keywords.KEYWORD_LENGTH))
    action = fields.String(required=True, validate=validate.OneOf(records.STATES), metadata={
        "description": "The state a contact sending this word alone moves to."})


class KeywordList(Lenient):
    """PUT /api/v1/consent/keywords: the whole list (an empty one restores the defaults)."""

    keywords = fields.List(fields.Nested(KeywordEntry), required=True,
                           validate=validate.Length(max=keywords.MAX_KEYWORDS))


change_body = ConsentChange()
keyword_body = KeywordList()


def consent_json(view: services.ConsentView) -> dict:
    def change(event) -> dict:
        detail = event.detail or {}
        phone_number_id, display = view.number_of_change(event)
        return {"id": event.id, "state": event.kind, "previous": detail.get("previous"),
                "phone_number_id": phone_number_id, "display_phone_number": display, "source": event.source,
                "actor": event.actor, "proof": detail.get("proof"), "at": iso(event.at)}

    return {
        "object": "contact_consent", "contact_id": view.contact.id, "wa_id": view.contact.wa_id,
        "numbers": [{"phone_number_id": n.phone_number_id, "display_phone_number": n.display_number,
                     "state": n.state, "source": n.source, "actor": n.actor, "proof": n.proof,
                     "changed_at": iso(n.changed_at)} for n in view.numbers],
        "history": [change(event) for event in view.history],
    }


def keywords_json(kept: list[keywords.Keyword], defaults: bool) -> dict:
    return {"object": "consent_keywords", "defaults": defaults,
            "keywords": [{"keyword": k.keyword, "action": k.action} for k in kept]}


@bp.get("/contacts/<contact_id>/consent")
def get_consent(contact_id):
    tenant = current_tenant()
    return jsonify(consent_json(services.consent_of(tenant, services.contact_of(tenant, contact_id))))


@bp.post("/contacts/<contact_id>/consent")
def record_consent(contact_id):
    tenant = current_tenant()
    contact = services.contact_of(tenant, contact_id)
    data = load(change_body, json_object())
    number = services.number_of(tenant, phone_number_id=data["phone_number_id"])
    changed = services.record_change(tenant, contact, number, data["state"], proof=data.get("proof"),
                                     source=data["source"], actor=f"api key #{g.api_key_id}")
    return jsonify({**consent_json(services.consent_of(tenant, contact)), "changed": changed})


@bp.get("/consent/keywords")
def get_keywords():
    return jsonify(keywords_json(*services.keywords_of(current_tenant())))


@bp.put("/consent/keywords")
def put_keywords():
    tenant = current_tenant()
    data = load(keyword_body, json_object())
    try:
        kept = services.replace_keywords(tenant, [(k["keyword"], k["action"]) for k in data["keywords"]])
    except keywords.KeywordError as exc:
        raise InvalidRequest(exc.message, details={exc.field: [exc.message]}) from None
    return jsonify(keywords_json(kept, not data["keywords"]))
