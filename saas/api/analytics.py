"""GET /api/v1/analytics/daily: the analytics page's figures for the API key's tenant, per day and number
(from the daily roll-ups: saas.analytics), with failures per WhatsApp code, Meta's cost by category and
market, and the plan's usage with its projection. On every plan. Registered on the API blueprint by
saas.api.routes."""
from __future__ import annotations

from flask import jsonify, request

from saas.analytics import reading
from saas.analytics.ranges import RangeError, parse_range
from saas.api.requests import current_rights, current_tenant
from saas.errors import InvalidRequest
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.metering.services import usage_summary
from saas.timeutil import iso, utcnow


def _amounts(figures: reading.Figures) -> list[dict]:
    return [{"currency": currency, "estimated_micros": figures.estimated_micros.get(currency, 0),
             "confirmed_micros": figures.confirmed_micros.get(currency, 0), "cost_micros": micros}
            for currency, micros in sorted(figures.cost_micros.items())]


def figures_json(figures: reading.Figures) -> dict:
    return {"sent": figures.sent, "delivered": figures.delivered, "read": figures.read, "failed": figures.failed,
            "conversations": figures.conversations, "confirmed": figures.confirmed, "cost": _amounts(figures)}


def _usage_json(projection: reading.Projection) -> dict:
    usage = projection.usage
    return {"metric": usage.unit, "period": {"start": iso(usage.period.start), "end": iso(usage.period.end)},
            "used": usage.used, "included": usage.quota, "projected": projection.projected,
            "elapsed": round(projection.elapsed, 4)}


def _number(tenant, raw):
    if raw is None or raw == "":
        return None, {}
    numbers = numbers_for(tenant, include_disconnected=True)
    found = next((n for n in numbers if n.phone_number_id == raw), None)
    return found, ({} if found is not None else {"number": ["Not one of this account's numbers."]})


def daily():
    tenant, now = current_tenant(), utcnow()
    details = {}
    try:
        days = parse_range(request.args.get("from"), request.args.get("to"), now.date())
    except RangeError as exc:
        details.update(exc.details)
    number, problems = _number(tenant, request.args.get("number"))
    details.update(problems)
    if details:
        raise InvalidRequest("Some query parameters are invalid.", details=details)
    report = reading.report(db.session, tenant.id, days, number.id if number else None)
    phone_ids = {n.id: n.phone_number_id for n in numbers_for(tenant, include_disconnected=True)}
    data = [{"date": day.isoformat(), "phone_number_id": phone_ids.get(pk), **figures_json(figures),
             "failures": {str(code): n for code, n in sorted(report.failures.get((day, pk), {}).items())}}
            for (day, pk), figures in sorted(report.cells.items())]
    rights = current_rights()
    return jsonify({
        "object": "analytics.daily", "from": days.start.isoformat(), "to": days.end.isoformat(), "timezone": "UTC",
        "phone_number_id": number.phone_number_id if number else None, "data": data,
        "totals": figures_json(report.totals),
        "failures": {str(code): n for code, n in report.failure_codes()},
        "costs": [{"category": line.category, "market": line.market, **figures_json(line.figures)}
                  for line in report.costs],
        "usage": _usage_json(reading.project(usage_summary(tenant, rights.subscription, rights), now)),
    })


def register(bp) -> None:
    bp.add_url_rule("/analytics/daily", "analytics_daily", daily, methods=["GET"])
