"""The tenant's audit log (/audit): who did what, newest first, a page at a time."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from saas.audit import services as audit
from saas.ids import page_number
from saas.portal.access import allowed, tenant_required

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50


@bp.get("/audit")
@tenant_required
@allowed("audit")
def index(tenant):
    number = page_number(request.args.get("page"))
    rows = audit.recent(tenant_id=tenant.id, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE)
    return render_template("portal/audit.html", entries=rows[:PAGE_SIZE], number=number,
                           has_next=len(rows) > PAGE_SIZE)
