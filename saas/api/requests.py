"""What every API view does first: read the JSON body, find the tenant behind the key."""
from __future__ import annotations

import re
import time

from flask import current_app, g, request

from saas.billing import entitlements
from saas import json_codec
from saas.errors import InvalidRequest, RateLimited, TenantSuspended
from saas.extensions import db
# How a body is checked is messaging's (every sender checks it the same way); the views call these.
from saas.messaging.outbound.payloads import json_problem, load  # noqa: F401  (load: the views' schema loader)
from saas.tenants.services import api_key_digest, authenticate_api_key

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def authenticate() -> None:
    """Every API request's first step (a blueprint before_request): the plan's rate limit, the key, its
    tenant, their rights.

    A key seen lately is counted against its plan's limit before anything is loaded, so a refusal
    costs no query (saas.api.plan_limits); a key not seen lately is counted once it is loaded.
    Raises Unauthenticated, RateLimited or TenantSuspended.
    """
    header = request.headers.get("Authorization")
    digest = api_key_digest(header)
    limits = current_app.extensions["plan_limits"]
    known = limits.known(digest)
    if known is not None:
        admit(limits.take(known))
    # Loaded again on a new connection if the database dropped the pooled one (503 if it stays away).
    reconnecting = current_app.extensions["reconnecting"].run
    tenant, key = reconnecting(db.session, lambda: authenticate_api_key(header))
    g.tenant = tenant
    g.tenant_id = tenant.id
    g.api_key_id = key.id
    g.rights = reconnecting(db.session, lambda: entitlements.for_tenant(tenant))
    # A cache miss read from the database: give the connection back before the body is
    # read, so a client that sends its body slowly holds no connection while it does.
    if db.session.registry.has() and db.session().in_transaction():
        db.session.rollback()
    if g.rights.suspended:
        # Every API call, reads included: a suspended tenant's data stays where it is, unserved.
        raise TenantSuspended()
    if known is None:
        admit(limits.take(limits.remember(digest, tenant.id, g.rights.rate_limit_per_minute)))


def admit(allowance) -> None:
    """Note the count for the answer's X-RateLimit headers; RateLimited (with Retry-After) past the limit,
    answered after RATE_LIMIT_PAUSE_SECONDS (at most the Retry-After)."""
    g.rate_allowance = allowance
    if allowance is None or allowance.allowed:
        return
    pause = min(current_app.config["RATE_LIMIT_PAUSE_SECONDS"], allowance.retry_after(time.time()))
    if pause > 0:
        # Nothing is held meanwhile (no row, no connection); under gevent only this request waits. A client
        # that asks again at once, on many connections, so asks about once a pause per connection.
        time.sleep(pause)
    raise RateLimited(headers={"Retry-After": str(allowance.retry_after(time.time()))})


def rate_limit_headers(response):
    """Every API answer carries the plan's limit, what is left of it and when a place frees up (after_request)."""
    allowance = g.get("rate_allowance")
    if allowance is not None:
        response.headers.update(allowance.headers())
    return response


def current_tenant():
    """The tenant behind this request's API key (a snapshot: id, name, slug, status)."""
    return g.tenant


def current_rights():
    """What the tenant may do now (saas.billing.entitlements.Entitlements)."""
    return g.rights


def json_object() -> dict:
    """The request body as a JSON object, or InvalidRequest saying what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = json_codec.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    problem = json_problem(body)
    if problem:
        raise InvalidRequest(problem)
    return body


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters.",
                             details={"Idempotency-Key": ["Invalid value."]})
    return key
