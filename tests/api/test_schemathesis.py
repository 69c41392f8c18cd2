"""Schemathesis against the OpenAPI document: generated requests never get a 5xx or an answer the document does not describe.

Runs on SQLite only (the inputs, not the database, are under test; the
hostile-input tests prove the database-specific refusals on PostgreSQL too).
About 7,000 to 11,000 generated cases over every operation (contacts, consent, broadcasts and the inbox too), positive and negative,
with a real API key of an Enterprise tenant (its rate limit and quota leave
room for them all) and the plan rate limiter off.
"""
from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)


from saas.api.openapi import build_spec
from saas.contacts import directory
from saas.extensions import db, limiter
from tests.factories import sender

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 300
GRAPH_VERSION = re.compile(r"^v[0-9]{1,3}(\.[0-9]{1,3})?$")


@pytest.fixture
def live(backend, request):
    """The app behind a real HTTP server on 127.0.0.1, on SQLite only."""
    if backend != "sqlite":
        pytest.skip("the generated requests test input handling; run once, on SQLite")
    return request.getfixturevalue("live_server")


@pytest.fixture
def api_key(app, client):
    acme = sender(client, "enterprise")
    with app.app_context():  # a contact of the tenant's, for the consent calls to find
        acme.contact_id = str(directory.find_or_create(db.session, acme.tenant_id, wa_id="16505551234")[0].id)
        db.session.commit()
        db.session.remove()
    limiter.enabled = False
    yield acme
    limiter.enabled = True


# The document the app serves (test_openapi.py proves /api/v1/openapi.json is this).
schema = schemathesis.openapi.from_dict(build_spec())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case, live, api_key):
    path = case.path_parameters or {}
    if "version" in path and not GRAPH_VERSION.match(str(path["version"])):
        # A path without /v{N}/ is not this API (the site's HTML 404 answers it): vary the other parts instead.
        path["version"] = "v23.0"
    for name in ("phone_number_id", "object_id"):
        if path.get(name) == "0":
            # Aim a share of the Cloud endpoints' cases at the tenant's real number.
            path[name] = api_key.number
    if path.get("contact_id") == "0":
        path["contact_id"] = api_key.contact_id  # and of the consent calls' at its contact
    if isinstance(case.body, dict) and case.body.get("phone_number_id") == "0":
        case.body["phone_number_id"] = api_key.number
    case.call_and_validate(base_url=live, headers=api_key.headers, checks=CHECKS, timeout=30)
