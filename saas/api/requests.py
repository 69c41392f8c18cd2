"""What every API view does first: read the JSON body, find the tenant behind the key."""
from __future__ import annotations

import json
import re

from flask import g, request
from marshmallow import ValidationError

from saas.errors import InvalidRequest
from saas.tenants.services import authenticate_api_key

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def current_tenant():
    tenant, key = authenticate_api_key(request.headers.get("Authorization"))
    g.tenant_id = tenant.id
    g.api_key_id = key.id
    return tenant


def json_object() -> dict:
    """The request body as a JSON object, or InvalidRequest saying what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def load(schema, data):
    """Validate ``data`` with a marshmallow schema; InvalidRequest with per-field details."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise InvalidRequest("Some fields are missing or invalid.", details=exc.normalized_messages()) from None
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.") from None


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters.",
                             details={"Idempotency-Key": ["Invalid value."]})
    return key
