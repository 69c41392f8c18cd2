"""The Exports page: a time range and a CSV download of each export (messages, daily usage, usage records,
orders), and each recent broadcast's recipients. Plan feature ``analytics_export`` (without it the page
says which plans have it, and every download answers the same with 403); role ``exports``."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request, stream_with_context

from saas.billing import entitlements
from saas.broadcasts import services as broadcasts
from saas.errors import ApiError, InvalidRequest
from saas.exports import ranges, services
from saas.extensions import db
from saas.portal.access import allowed, tenant_required

bp = Blueprint("exports", __name__, url_prefix="/exports")


def _page(tenant, *, status: int = 200, errors: dict | None = None, message: str | None = None):
    rights = entitlements.for_tenant(tenant)
    if not rights.may(services.FEATURE):
        return render_template("portal/exports.html", allowed=False, plan=rights.effective), 403
    args = {key: request.args.get(key, "")[:ranges.MAX_LENGTH] for key in ("from", "to")}
    recent = broadcasts.list_for(tenant, limit=10) if rights.may(broadcasts.FEATURE) else []
    query = {} if errors else {key: value for key, value in args.items() if value}
    return render_template("portal/exports.html", allowed=True, kinds=services.KINDS, args=args, query=query,
                           errors=errors or {}, message=message, broadcasts=recent), status


@bp.get("")
@tenant_required
@allowed("exports")
def index(tenant):
    if request.args.get("from") or request.args.get("to"):
        try:
            ranges.parse(request.args)
        except InvalidRequest as exc:
            return _page(tenant, status=400, errors=exc.details, message=exc.message)
    return _page(tenant)


@bp.get("/<name>.csv")
@tenant_required
@allowed("exports")
def download(tenant, name):
    if name not in services.KINDS:
        abort(404)
    try:
        export = services.start(db.session, tenant, entitlements.for_tenant(tenant), name, request.args)
    except InvalidRequest as exc:
        return _page(tenant, status=400, errors=exc.details, message=exc.message)
    except ApiError:  # the plan's gate: the page says which plans include exports
        return _page(tenant)
    return Response(stream_with_context(export.chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{export.filename}"'})
