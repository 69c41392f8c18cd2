"""Export test data: a tenant's messages with their costs, usage records and orders, written as rows on
fixed days (2026-11-02 to 2026-11-04), so a test names exactly what a range must hold."""
from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime

from sqlalchemy import select

from saas.costs.models import MessageCost
from saas.extensions import db
from saas.messaging.models import Message, PhoneNumber
from saas.metering.models import UsageRecord
from saas.orders.models import Order
from saas.timeutil import month_start

DAY1, DAY2, DAY3 = datetime(2026, 11, 2, 9, 30), datetime(2026, 11, 3, 23, 59, 59), datetime(2026, 11, 4, 0, 0)
# Cells a spreadsheet would run, each with one of the characters that start a formula.
_ids = itertools.count(1)
HOSTILE = ("=HYPERLINK(\"http://x.example\")", "+1+2", "-3+4", "@SUM(A1)", "\tTAB", "\rCR")


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def message(tenant_id: int, at: datetime, **fields) -> int:
    """A message of the tenant's sandbox number created at ``at``; its id."""
    number = db.session.scalar(select(PhoneNumber).where(PhoneNumber.tenant_id == tenant_id))
    values = {"direction": "out", "wa_id": "905320000001", "type": "template", "status": "delivered",
              "category": "marketing", **fields}
    row = Message(tenant_id=tenant_id, phone_number_id=number.id, created_at=at, updated_at=at, **values)
    db.session.add(row)
    db.session.flush()
    return row.id


def cost(tenant_id: int, message_id: int, at: datetime, *, estimated: int | None, confirmed: int | None) -> None:
    db.session.add(MessageCost(tenant_id=tenant_id, message_id=message_id, sent_at=at, market="Turkey",
                               category="marketing", context="outside_window", currency="USD", tier="",
                               estimated_billable=True, estimated_micros=estimated, estimated_at=at,
                               confirmed_billable=confirmed is not None, confirmed_micros=confirmed,
                               confirmed_at=at if confirmed is not None else None))


def record(tenant_id: int, at: datetime, metric: str, *, overage: bool | None, voided: bool = False,
           quantity: int = 1) -> int:
    n = next(_ids)
    row = UsageRecord(tenant_id=tenant_id, metric=metric, quantity=quantity, subject=f"message:{n}",
                      identifier=f"test-record-{n}",
                      period_start=month_start(at), created_at=at, overage=overage,
                      reported_at=at if overage else None, voided_at=at if voided else None)
    db.session.add(row)
    db.session.flush()
    return row.id


def order(tenant_id: int, at: datetime, reference: str, **fields) -> int:
    row = Order(tenant_id=tenant_id, reference=reference, name=fields.pop("name", f"#{reference}"), source="api",
                state="paid", state_at=at, created_at=at, updated_at=at,
                items=[{"name": "Shirt", "quantity": 2}, {"name": "Hat", "quantity": 1}], **fields)
    db.session.add(row)
    db.session.flush()
    return row.id
