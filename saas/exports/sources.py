"""What each export reads: its columns and its rows, scoped to one tenant and one time range.

Messages and usage records are read through a server-side cursor (``yield_per``) in one ordered pass, so a
million rows cross the process a batch at a time; the daily usage is one grouped query of a few rows a day.
Orders are few and read the same way. Every query names the tenant: no row of another tenant is ever read.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import and_, case, func, select

from saas.billing.models import UNIT_CONVERSATIONS, UNIT_MESSAGES
from saas.billing.pricing import METRIC_CONVERSATIONS, METRIC_MESSAGES
from saas.costs.models import MessageCost
from saas.csv_stream import BATCH
from saas.exports.ranges import Range
from saas.messaging.models import Message, PhoneNumber
from saas.metering.models import UsageRecord
from saas.orders.models import Order
from saas.timeutil import iso

MESSAGE_COLUMNS = ("id", "created_at", "number", "wa_id", "direction", "type", "status", "category",
                   "pricing_category", "pricing_type", "currency", "estimated_cost", "confirmed_cost",
                   "error_code", "error_title")
USAGE_COLUMNS = ("day", "metric", "count", "included", "overage", "undecided")
RECORD_COLUMNS = ("id", "created_at", "metric", "quantity", "subject", "overage", "reported_at")
ORDER_COLUMNS = ("id", "reference", "name", "source", "state", "state_at", "wa_id", "customer_name", "items",
                 "total", "currency", "tracking_number", "carrier", "created_at", "updated_at")
UNITS = (UNIT_CONVERSATIONS, UNIT_MESSAGES)


def amount(micros: int | None) -> str | None:
    """Millionths of a currency unit as a plain decimal (``25000`` -> ``0.025``)."""
    if micros is None:
        return None
    text = format(Decimal(micros).scaleb(-6), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _streamed(session, query):
    return session.execute(query.execution_options(yield_per=BATCH))


def message_rows(session, tenant_id: int, span: Range):
    """The tenant's messages created in ``span``, oldest first, with their cost (empty when none was
    estimated, as for inbound messages)."""
    query = (
        select(Message.id, Message.created_at, PhoneNumber.display_number, Message.wa_id, Message.direction,
               Message.type, Message.status, Message.category, Message.pricing_category, Message.pricing_type,
               MessageCost.currency, MessageCost.estimated_micros, MessageCost.confirmed_micros,
               Message.error_code, Message.error_title)
        .join(PhoneNumber, PhoneNumber.id == Message.phone_number_id)
        .outerjoin(MessageCost, and_(MessageCost.tenant_id == Message.tenant_id,
                                     MessageCost.message_id == Message.id))
        .where(Message.tenant_id == tenant_id, Message.created_at >= span.start, Message.created_at < span.end)
        .order_by(Message.created_at, Message.id))
    for row in _streamed(session, query):
        yield (row.id, iso(row.created_at), row.display_number, row.wa_id, row.direction, row.type, row.status,
               row.category, row.pricing_category, row.pricing_type, row.currency, amount(row.estimated_micros),
               amount(row.confirmed_micros), row.error_code, row.error_title)


def _billed(tenant_id: int, span: Range):
    return (UsageRecord.tenant_id == tenant_id, UsageRecord.voided_at.is_(None),
            UsageRecord.created_at >= span.start, UsageRecord.created_at < span.end)


def usage_rows(session, tenant_id: int, span: Range):
    """Per day (UTC) and metric, the billable units used: how many, how many the plan included, how many
    went past it (reported to Stripe as overage) and how many are not decided yet. Un-billed units (a send
    that failed upstream) are left out."""
    day = func.date(UsageRecord.created_at)

    def part(decided):
        return func.sum(case((decided, UsageRecord.quantity), else_=0))

    query = (select(day.label("day"), UsageRecord.metric, func.sum(UsageRecord.quantity),
                    part(UsageRecord.overage.is_(False)), part(UsageRecord.overage.is_(True)),
                    part(UsageRecord.overage.is_(None)))
             .where(*_billed(tenant_id, span)).group_by(day, UsageRecord.metric).order_by(day, UsageRecord.metric))
    for day_value, metric, count, included, overage, undecided in session.execute(query):
        yield str(day_value), metric, count, included, overage, undecided


def _of_unit(unit: str):
    if unit == UNIT_CONVERSATIONS:
        return UsageRecord.metric == METRIC_CONVERSATIONS
    return UsageRecord.metric.startswith(f"{METRIC_MESSAGES}.")


def record_rows(session, tenant_id: int, span: Range, *, unit: str | None = None, overage: bool = False):
    """The tenant's billable usage records created in ``span`` (when their meter events are dated), oldest
    first; only ``unit``'s (conversations or messages) when given, only those past the plan's included
    amount (the ones an invoice's overage line charges) when ``overage``."""
    query = select(UsageRecord.id, UsageRecord.created_at, UsageRecord.metric, UsageRecord.quantity,
                   UsageRecord.subject, UsageRecord.overage, UsageRecord.reported_at).where(*_billed(tenant_id, span))
    if unit is not None:
        query = query.where(_of_unit(unit))
    if overage:
        query = query.where(UsageRecord.overage.is_(True))
    for row in _streamed(session, query.order_by(UsageRecord.created_at, UsageRecord.id)):
        yield (row.id, iso(row.created_at), row.metric, row.quantity, row.subject, row.overage,
               iso(row.reported_at))


def _items(items) -> str:
    """An order's items as one cell: ``2 x Shirt; 1 x Hat``."""
    return "; ".join(f"{item.get('quantity', 1)} x {item.get('name', '')}" for item in items or []
                     if isinstance(item, dict))


def order_rows(session, tenant_id: int, span: Range):
    """The tenant's orders created in ``span``, oldest first."""
    query = (select(Order).where(Order.tenant_id == tenant_id, Order.created_at >= span.start,
                                 Order.created_at < span.end).order_by(Order.created_at, Order.id))
    for order in session.scalars(query.execution_options(yield_per=BATCH)):
        yield (order.id, order.reference, order.name, order.source, order.state, iso(order.state_at), order.wa_id,
               order.customer_name, _items(order.items), order.total, order.currency, order.tracking_number,
               order.carrier, iso(order.created_at), iso(order.updated_at))
