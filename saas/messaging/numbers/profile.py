"""A number's own info and its WhatsApp Business profile, as the Cloud API serves them.

``GET /{phone_number_id}?fields=...`` and ``GET|POST
/{phone_number_id}/whatsapp_business_profile``. A live number's are asked of
Graph with its token (GETs retried when Graph is busy; a POST never is) and
Meta's answer or refusal is relayed. A sandbox number answers the same shapes
from our row; its profile cannot be changed (LiveNumberRequired), since there
is no WhatsApp profile behind it.
"""
from __future__ import annotations

import re

from saas.errors import InvalidRequest, LiveNumberRequired, UpstreamError
from saas.extensions import db
from saas.messaging.numbers.graph import GraphError
from saas.messaging.models import MODE_LIVE, PhoneNumber
from saas.crypto import TokenUnreadable, decrypt_token
from saas.messaging.numbers.phone_numbers import sending_number

# Graph's field list: names, commas, and the nested {...} and .modifier(...) syntax; bounded.
FIELDS = re.compile(r"^[A-Za-z0-9_,.{}()]{1,500}$")
PROFILE_FIELDS = ("about", "address", "description", "email", "profile_picture_url", "websites", "vertical")


def fields_param(raw: str | None) -> str | None:
    """The ``fields`` query parameter checked (None when absent or empty); InvalidRequest otherwise."""
    if raw is None or raw == "":
        return None
    if not FIELDS.match(raw):
        raise InvalidRequest("fields must be a comma-separated list of field names (at most 500 characters).",
                             details={"fields": ["Invalid value."]})
    return raw


def _wanted(fields: str | None) -> set[str] | None:
    if fields is None:
        return None
    return {re.split(r"[{.(]", name, maxsplit=1)[0] for name in fields.split(",") if name}


def access_token(ciphertext: str | None) -> str:
    """A live number's token in clear; UpstreamError when none is stored or none of our keys reads it."""
    try:
        if not ciphertext:
            raise TokenUnreadable("no access token stored")
        return decrypt_token(ciphertext)
    except TokenUnreadable:
        raise UpstreamError("This number's access token cannot be used; reconnect the number in the portal.",
                            details={"whatsapp_code": None}) from None


def _call(method, *args, **kwargs) -> dict:
    try:
        return method(*args, **kwargs)
    except GraphError as exc:
        raise exc.as_upstream() from None


def number_info(graph, tenant, phone_number_id: str, fields: str | None) -> dict:
    """The number's info (display_phone_number, verified_name, quality_rating, messaging_limit_tier ...).

    Raises NotFound (not the tenant's number), UpstreamError/UpstreamTimeout.
    """
    number = sending_number(tenant, phone_number_id)
    if number.mode == MODE_LIVE:
        return _call(graph.get, graph.url(number.phone_number_id), access_token(number.access_token_encrypted),
                     params={"fields": fields} if fields else None)
    row = db.session.get(PhoneNumber, number.id)
    info = {"id": row.phone_number_id, "display_phone_number": row.display_number,
            "verified_name": row.verified_name or "", "quality_rating": row.quality_rating or "GREEN",
            "messaging_limit_tier": row.messaging_limit_tier or "TIER_250",
            "code_verification_status": "NOT_VERIFIED", "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"}, "name_status": "NONE"}
    db.session.rollback()
    wanted = _wanted(fields)
    return info if wanted is None else {k: v for k, v in info.items() if k in wanted or k == "id"}


def business_profile(graph, tenant, phone_number_id: str, fields: str | None) -> dict:
    """``{"data": [profile]}``: Meta's for a live number, an empty one for a sandbox number."""
    number = sending_number(tenant, phone_number_id)
    if number.mode == MODE_LIVE:
        return _call(graph.get, graph.url(number.phone_number_id, "whatsapp_business_profile"), access_token(number.access_token_encrypted),
                     params={"fields": fields} if fields else None)
    profile = {"about": "", "address": "", "description": "", "email": "", "profile_picture_url": "",
               "websites": [], "vertical": "UNDEFINED"}
    wanted = _wanted(fields)
    if wanted is not None:
        profile = {k: v for k, v in profile.items() if k in wanted}
    return {"data": [{**profile, "messaging_product": "whatsapp"}]}


def update_business_profile(graph, tenant, phone_number_id: str, changes: dict) -> dict:
    """Change a live number's profile at WhatsApp (never retried); LiveNumberRequired for a sandbox number."""
    number = sending_number(tenant, phone_number_id)
    if number.mode != MODE_LIVE:
        raise LiveNumberRequired("A sandbox number has no WhatsApp Business profile to change; connect a live "
                                 "number to set one.")
    return _call(graph.post, graph.url(number.phone_number_id, "whatsapp_business_profile"), access_token(number.access_token_encrypted),
                 {"messaging_product": "whatsapp", **changes})
