"""The export operations of the OpenAPI document (saas.api.openapi): /api/v1/exports/..., as saas.api.exports
answers them, with each CSV's columns from saas.exports.sources."""
from __future__ import annotations

from saas.api.openapi_responses import errors
from saas.exports import ranges, sources
from saas.exports.services import KINDS

EXPORT_ERRORS = (400, 401, 402, 403, 405, 413, 429)
DESCRIPTIONS = {403: "The plan does not include analytics exports (`feature_not_in_plan`, with `upgrade_url`), "
                     "or the account is suspended."}
RANGE = [
    {"name": "from", "in": "query", "schema": {"type": "string", "maxLength": ranges.MAX_LENGTH},
     "description": f"A date (YYYY-MM-DD) or ISO 8601 time, included; default {ranges.DEFAULT_DAYS} days "
                    "before `to`."},
    {"name": "to", "in": "query", "schema": {"type": "string", "maxLength": ranges.MAX_LENGTH},
     "description": f"A date (that whole day included) or an ISO 8601 time (left out); default now. At most "
                    f"{ranges.MAX_DAYS} days after `from`."},
]
RECORD_FILTERS = [
    {"name": "unit", "in": "query", "schema": {"type": "string", "enum": list(sources.UNITS)},
     "description": "Only the records of this billed unit."},
    {"name": "overage", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]},
     "description": "1: only the records past the plan's included amount (an invoice's overage line)."},
]
OPERATION_IDS = {"messages": "exportMessages", "usage": "exportDailyUsage", "usage-records": "exportUsageRecords",
                 "orders": "exportOrders"}


def paths(spec) -> None:
    """The export operations onto ``spec``."""
    for name, kind in KINDS.items():
        parameters = RANGE + (RECORD_FILTERS if name == "usage-records" else [])
        spec.path(f"/api/v1/exports/{name}", operations={"get": {
            "operationId": OPERATION_IDS[name], "summary": f"{kind.title} (CSV, streamed)",
            "parameters": parameters,
            "responses": {"200": {"description": "Columns: " + ", ".join(kind.columns) + ".",
                                  "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **errors(EXPORT_ERRORS, descriptions=DESCRIPTIONS)}}})
