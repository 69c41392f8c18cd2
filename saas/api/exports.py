"""/api/v1/exports/{messages,usage,usage-records,orders}?from=&to=: the account's rows over a time range as
CSV, streamed (plan feature ``analytics_export``: 403 ``feature_not_in_plan`` with ``upgrade_url`` without
it; 400 ``invalid_request`` for a range that names no dates, ends before it starts or spans more than a
year). Registered on the API blueprint by saas.api.routes."""
from __future__ import annotations

from flask import Response, request, stream_with_context

from saas.api.requests import current_rights, current_tenant
from saas.exports import services
from saas.extensions import db


def _view(name: str):
    def view():
        export = services.start(db.session, current_tenant(), current_rights(), name, request.args)
        return Response(stream_with_context(export.chunks), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'})

    view.__name__ = "export_" + name.replace("-", "_")
    return view


def register(bp) -> None:
    """Add the export views to the API blueprint: ``api.export_messages`` and its siblings."""
    for name in services.KINDS:
        view = _view(name)
        bp.add_url_rule(f"/exports/{name}", view.__name__, view, methods=["GET"])
