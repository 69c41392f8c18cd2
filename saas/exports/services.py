"""Exports (plan feature ``analytics_export``): a tenant's messages, daily usage, usage records and orders
over a time range, as CSV streamed in flat memory (saas.csv_stream). The API and the portal call ``start``
and answer what it returns; a broadcast's recipients export from the broadcast (saas.broadcasts.export)
behind the same feature."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator

from saas.csv_stream import stream
from saas.errors import InvalidRequest
from saas.exports import ranges, sources
from saas.timeutil import iso

FEATURE = "analytics_export"


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: Callable


KINDS = {kind.name: kind for kind in (
    Kind("messages", "Messages with status, category and cost", sources.MESSAGE_COLUMNS, sources.message_rows),
    Kind("usage", "Daily usage per metric, included and overage", sources.USAGE_COLUMNS, sources.usage_rows),
    Kind("usage-records", "Usage records (what Stripe's meters were sent)", sources.RECORD_COLUMNS,
         sources.record_rows),
    Kind("orders", "Orders", sources.ORDER_COLUMNS, sources.order_rows),
)}


@dataclass(frozen=True)
class Export:
    """A checked request for an export: what to name the file, and its CSV text chunks (read lazily)."""

    filename: str
    chunks: Iterator[str]


def require(rights) -> None:
    """The plan's gate on every export: FeatureNotInPlan (403) or PaymentRequired (402), with the upgrade link."""
    rights.require(FEATURE, "analytics exports")


def _record_filters(args) -> dict:
    unit = (args.get("unit") or "").strip()
    if unit and unit not in sources.UNITS:
        raise InvalidRequest("No such unit.", details={"unit": f"One of {', '.join(sources.UNITS)}."})
    return {"unit": unit or None, "overage": ranges.flag(args, "overage")}


def start(session, tenant, rights, name: str, args) -> Export:
    """The export ``name`` of ``tenant`` for the query ``args`` (``from``, ``to``; for usage records ``unit``
    and ``overage``). Raises FeatureNotInPlan/PaymentRequired without the feature, InvalidRequest for a bad
    range or filter, before any row is read.

    The usage records past the plan's included amount are every plan's to read, the feature or not: they are
    what an invoice's overage line charges, and the invoice links to them (``records_behind``)."""
    kind = KINDS[name]
    extra = _record_filters(args) if name == "usage-records" else {}
    if not extra.get("overage"):
        require(rights)
    span = ranges.parse(args)
    rows = kind.rows(session, tenant.id, span, **extra)
    filename = f"{kind.name}-{span.start:%Y%m%d}-{span.end:%Y%m%d}.csv"
    return Export(filename, stream(kind.columns, rows))


def records_behind(unit: str, start: datetime, end: datetime) -> dict[str, str]:
    """The query of the usage-records export that lists what an invoice's overage line of ``unit`` over
    ``[start, end)`` charges: the unit's records past the plan's included amount, dated in that period (as
    their meter events were)."""
    return {"from": iso(start), "to": iso(end), "unit": unit, "overage": "1"}
