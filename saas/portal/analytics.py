"""The tenant's analytics page: per day and per number over a date range, the messages sent, delivered,
read and failed (with WhatsApp's failure codes), the conversations opened, Meta's cost by category and
market, and the plan's usage against what it includes with its projection to the period's end. On every
plan (the exports are what ``analytics_export`` sells); role area ``dashboard``. Read from the daily
roll-ups (saas.analytics); the chart is drawn by static/js/analytics-chart.js from the page's data
attributes."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from saas.analytics import reading
from saas.analytics.ranges import RangeError, parse_range
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.metering.services import usage_summary
from saas.portal.access import allowed, tenant_required
from saas.timeutil import utcnow

bp = Blueprint("analytics", __name__)


def pick_number(numbers, raw) -> tuple[object | None, list[str]]:
    """The tenant's number whose Meta id is ``raw`` (none asked: every number); a problem otherwise."""
    if not raw:
        return None, []
    for number in numbers:
        if number.phone_number_id == raw:
            return number, []
    return None, ["Not one of your numbers."]


def chart_data(days) -> dict:
    """The chart's series: each day (seconds since the epoch, UTC midnight) and its counts."""
    from calendar import timegm

    return {"days": [timegm(day.timetuple()) for day, _ in days],
            **{name: [getattr(figures, name) for _, figures in days]
               for name in ("sent", "delivered", "read", "failed")}}


@bp.get("/analytics")
@tenant_required
@allowed("dashboard")
def index(tenant):
    now = utcnow()
    numbers = numbers_for(tenant, include_disconnected=True)
    errors: dict[str, list[str]] = {}
    try:
        days = parse_range(request.args.get("from"), request.args.get("to"), now.date())
    except RangeError as exc:
        errors.update(exc.details)
        days = parse_range(None, None, now.date())
    number, problems = pick_number(numbers, request.args.get("number"))
    if problems:
        errors["number"] = problems
    figures = reading.report(db.session, tenant.id, days, number.id if number else None)
    by_day = figures.by_day()
    return render_template(
        "portal/analytics.html", days=days, numbers=numbers, number=number, errors=errors, report=figures,
        by_day=by_day, by_number=figures.by_number(), number_of={n.id: n for n in numbers},
        projection=reading.project(usage_summary(tenant), now), chart=chart_data(by_day),
        cost_text=reading.cost_text, asked={"from": request.args.get("from", ""), "to": request.args.get("to", "")},
    ), 400 if errors else 200
