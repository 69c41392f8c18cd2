"""Delivery statuses, from WhatsApp's webhooks or the sandbox: one code path for both.

A status never moves a message backwards, a timestamp is set once, and a
``failed`` that arrives after ``delivered`` or ``read`` is stale news. Each
rule is part of the UPDATE itself, so statuses apply in batches, in any
order, any number of times, with the same result.

A status may also carry what WhatsApp charges for the message (its
``conversation`` and ``pricing`` objects): kept on the message the first time
it is learnt, whichever status brought it.

What statuses change in billing lives in saas.messaging.outbound.settle and is applied
in the same transaction: a ``failed`` status un-bills the message it moves to
failed (once: only a status that moves it does), and a status naming our
message id (``sent_as``, from its biz_opaque_callback_data) gives a send whose
answer we never saw its WhatsApp id first.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, and_, bindparam, case, func, or_, update

from saas import events
from saas.extensions import db
from saas.messaging.outbound import settle
from saas.messaging.models import STATUS_RANK, Message
from saas.metering.services import Metering

TIMESTAMP_FIELD = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}

# What a status may tell about the message's price, as it is stored.
CHARGE_FIELDS = ("wa_conversation_id", "wa_conversation_origin", "wa_conversation_expires_at", "pricing_billable",
                 "pricing_model", "pricing_category", "pricing_type")


@dataclass(frozen=True)
class StatusUpdate:
    tenant_id: int
    wa_message_id: str
    status: str
    at: datetime
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    wa_conversation_id: str | None = None
    wa_conversation_origin: str | None = None
    wa_conversation_expires_at: datetime | None = None
    pricing_billable: bool | None = None
    pricing_model: str | None = None
    pricing_category: str | None = None
    pricing_type: str | None = None
    # Our message id, read from the status's biz_opaque_callback_data (saas.messaging.outbound.callback_data):
    # how a send whose answer we never saw is found.
    sent_as: int | None = None

    @property
    def has_pricing(self) -> bool:
        return self.pricing_model is not None or self.pricing_category is not None

    @property
    def has_conversation(self) -> bool:
        return self.wa_conversation_id is not None


def _rank():
    return case(STATUS_RANK, value=Message.status, else_=0)


def _build(status: str):
    field = getattr(Message, TIMESTAMP_FIELD[status])
    advances = _rank() < STATUS_RANK[status]
    values = {TIMESTAMP_FIELD[status]: func.coalesce(field, bindparam("at")),
              "status": case((advances, status), else_=Message.status)}
    # What the message is charged is learnt once: the first status that tells it sets it.
    learns = or_(and_(bindparam("has_pricing", type_=Boolean), Message.pricing_model.is_(None),
                      Message.pricing_category.is_(None)),
                 and_(bindparam("has_conversation", type_=Boolean), Message.wa_conversation_id.is_(None)))
    for name in CHARGE_FIELDS:
        column = getattr(Message, name)
        values[name] = func.coalesce(column, bindparam(name, type_=column.type))
    changes = or_(field.is_(None), advances, learns)
    if status == "failed":
        for name in ("error_code", "error_title", "error_details"):
            column = getattr(Message, name)
            values[name] = case((advances, bindparam(name, type_=column.type)), else_=column)
        # Two comparisons, not NOT IN: an expanding IN cannot run as one statement over many rows.
        changes = and_(changes, Message.status != "delivered", Message.status != "read")
    return (update(Message)
            .where(Message.tenant_id == bindparam("tenant"), Message.wa_message_id == bindparam("wamid"), changes)
            .values(**values)
            .execution_options(synchronize_session=False))


# Built once per status: building an UPDATE costs more than running it.
_STATEMENTS = {status: _build(status) for status in TIMESTAMP_FIELD}
# What each statement is given, and nothing more: a parameter named like a column that the
# statement does not set would be added to its SET clause (an error code wiped by a late "sent").
_PASSED = {status: ["at", *CHARGE_FIELDS, *(("error_code", "error_title", "error_details")
                                            if status == "failed" else ())]
           for status in TIMESTAMP_FIELD}


def apply_statuses(conn, updates: list[StatusUpdate], *, metering: Metering | None = None) -> int:
    """Apply many statuses on ``conn`` in the caller's transaction (no commit).

    A status naming a send whose answer we never saw gives it its WhatsApp
    id first (billed again if recovery had settled it); a ``failed`` status
    un-bills the message it moves, once (saas.messaging.outbound.settle). Returns how
    many (message, status) pairs changed something.
    """
    metering = metering or Metering()
    failing = [u for u in updates if u.status == "failed"]
    settle.lock_windows_of(conn, failing)
    settle.take_up_named(conn, metering, updates)
    changed = 0
    for status in TIMESTAMP_FIELD:  # the order statuses happen in
        rows = []
        for u in updates:
            if u.status == status:
                row = {name: getattr(u, name) for name in _PASSED[status]}
                row.update(tenant=u.tenant_id, wamid=u.wa_message_id, has_pricing=u.has_pricing,
                           has_conversation=u.has_conversation)
                rows.append(row)
        if rows:
            # Rows in one order in every transaction: two batches touching the same messages
            # take their row locks in the same order instead of deadlocking.
            rows.sort(key=lambda row: (row["tenant"], row["wamid"]))
            failed_now = settle.billed_and_failing(conn, failing) if status == "failed" else []
            # With many rows, rowcount is the sum over them on both drivers used here.
            changed += conn.execute(_STATEMENTS[status], rows).rowcount
            settle.unbill_failed(conn, metering, failed_now)
    return changed


def apply_status_batch(updates: list[StatusUpdate]) -> int:
    """Apply many statuses of many messages in one transaction. Commits.

    Idempotent and order-proof. Returns how many (message, status) pairs
    changed something; statuses for unknown messages, or another tenant's,
    change nothing.
    """
    try:
        changed = apply_statuses(db.session.connection(), updates)
    except BaseException:
        db.session.rollback()
        raise
    events.commit(db.session)  # a send a status names may be settled (saas.messaging.outbound.settle)
    return changed


def apply_status(tenant_id: int, wa_message_id: str, status: str, at: datetime,
                 *, error_code: int | None = None, error_title: str | None = None) -> bool:
    """Move one message to ``status`` unless it is already further along; whether it changed. Commits."""
    if status not in TIMESTAMP_FIELD:
        return False
    return apply_status_batch([StatusUpdate(tenant_id, wa_message_id, status, at, error_code, error_title)]) > 0
