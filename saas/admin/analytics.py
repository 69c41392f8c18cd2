"""The admin's analytics page: every tenant's messages, failures, conversations and Meta's cost over a date
range (the daily roll-ups), with each tenant's revenue this period beside them (saas.back_office.analytics)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, url_for

from saas.admin.access import platform_admin_required
from saas.analytics.ranges import RangeError, parse_range
from saas.analytics.reading import cost_text
from saas.back_office.analytics import platform_report
from saas.billing.standing import PastDueGrace
from saas.extensions import db
from saas.timeutil import utcnow

bp = Blueprint("admin_analytics", __name__, url_prefix="/admin/analytics")


@bp.context_processor
def console_links():
    # The console's menu links the plans pages where this app has them.
    return {"plans_url": url_for("admin_plans.index") if "admin_plans.index" in current_app.view_functions else None}


@bp.get("/")
@platform_admin_required
def index():
    now = utcnow()
    errors: dict[str, list[str]] = {}
    try:
        days = parse_range(request.args.get("from"), request.args.get("to"), now.date())
    except RangeError as exc:
        errors = exc.details
        days = parse_range(None, None, now.date())
    report = platform_report(db.session, current_app.extensions["metering"], days, now=now,
                             grace=PastDueGrace.configured())
    return render_template("admin/analytics.html", report=report, days=days, errors=errors, cost_text=cost_text,
                           asked={"from": request.args.get("from", ""), "to": request.args.get("to", "")},
                           ), 400 if errors else 200
