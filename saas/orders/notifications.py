"""Order notifications: each state an order reaches sends the template its tenant mapped to that event,
once.

``prepare`` runs in the transaction that applies the event: it freezes the Cloud API body (the mapped
template, its variables filled from the order: saas.orders.mapping) in a ``pending`` row, unique per order
and event, so a repeated or concurrent event finds it there and adds nothing. ``deliver`` sends it after
that transaction commits: it claims the row (``pending``, or ``sending`` whose claim is older than
``LEASE``) in a short transaction of its own, calls the send service with the Idempotency-Key
``order-notification:<id>``, and records the outcome. A crash anywhere leaves a row the sweep
(``deliver_due``) claims again; the same key and the same frozen body make the send service answer the
first send again rather than send twice. Consent and WhatsApp's rules are the send service's: a template
Meta recategorised as marketing goes only to a contact who opted in.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from saas.database import insert_for
from saas.errors import ApiError
from saas.messaging.models import PhoneNumber
from saas.messaging.outbound.payloads import outbound
from saas.orders import mapping
from saas.orders.models import (
    FAILED, PENDING, SENDING, SENT, SKIPPED, NotificationMapping, OrderNotification,
)
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

NOTIFICATIONS = OrderNotification.__table__
MAPPINGS = NotificationMapping.__table__
# A claim older than this is taken to be a crashed sender's; longer than a send can take.
LEASE = timedelta(minutes=2)
KEY_PREFIX = "order-notification:"


def number_of_mappings(conn, tenant_id: int, event: str) -> int | None:
    """The number of ``event``'s mapping, else of the tenant's first mapping; None without mappings."""
    rows = conn.execute(select(MAPPINGS.c.event, MAPPINGS.c.phone_number_id).where(
        MAPPINGS.c.tenant_id == tenant_id).order_by(MAPPINGS.c.id)).all()
    numbers = {row.event: row.phone_number_id for row in rows}
    return numbers.get(event, rows[0].phone_number_id if rows else None)


def prepare(conn, order, event: str, now: datetime) -> int | None:
    """The notification of ``order`` reaching ``event``, written in the caller's transaction: ``pending``
    with its frozen body; ``skipped`` (with why) when it cannot be sent; nothing when the event has no
    template mapped. Its id when it is to be sent."""
    row = conn.execute(select(MAPPINGS).where(MAPPINGS.c.tenant_id == order.tenant_id,
                                              MAPPINGS.c.event == event)).first()
    if row is None:
        return None
    session = Session(bind=conn)
    try:
        number = session.get(PhoneNumber, row.phone_number_id)
        found = mapping.template_of(session, number, row.template_name, row.template_language)
    finally:
        session.close()
    status, why, body = PENDING, None, {}
    if order.wa_id is None:
        status, why = SKIPPED, "The order has no customer WhatsApp number."
    elif isinstance(found, str):
        status, why = SKIPPED, found
    else:
        values, missing = mapping.fill(row.variables or {}, found.variables, mapping.order_values(order))
        if missing:
            status, why = SKIPPED, f"No value and no default for {', '.join(missing)}."
        else:
            body = mapping.body(order.wa_id, row.template_name, row.template_language, found.variables, values)
    made = conn.execute(insert_for(conn, OrderNotification).on_conflict_do_nothing(
        index_elements=["tenant_id", "order_id", "event"]).values(
        tenant_id=order.tenant_id, order_id=order.id, event=event, status=status,
        phone_number_id=row.phone_number_id, template_name=row.template_name,
        template_language=row.template_language, payload=body, error_title=why, attempts=0, created_at=now)
        .returning(NOTIFICATIONS.c.id)).scalar()
    return made if status == PENDING else None


def _claim(session, tenant_id: int, notification_id: int, now: datetime):
    """Take the notification for sending (one short transaction); its row, or None when another has it or
    it is settled."""
    try:
        taken = session.execute(update(OrderNotification).where(
            OrderNotification.id == notification_id, OrderNotification.tenant_id == tenant_id,
            or_(OrderNotification.status == PENDING,
                (OrderNotification.status == SENDING) & (OrderNotification.claimed_at < now - LEASE)))
            .values(status=SENDING, claimed_at=now, attempts=OrderNotification.attempts + 1)
            .execution_options(synchronize_session=False)).rowcount
        row = session.execute(select(NOTIFICATIONS.c.payload, PhoneNumber.phone_number_id)
                              .outerjoin(PhoneNumber, PhoneNumber.id == NOTIFICATIONS.c.phone_number_id)
                              .where(NOTIFICATIONS.c.id == notification_id)).first() if taken else None
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return row


def _settle(session, notification_id: int, **values) -> None:
    try:
        session.execute(update(OrderNotification).where(OrderNotification.id == notification_id,
                                                        OrderNotification.status == SENDING)
                        .values(**values).execution_options(synchronize_session=False))
        session.commit()
    except BaseException:
        session.rollback()
        raise


def deliver(session, service, tenant, notification_id: int, *, rights=None, now: datetime | None = None) -> str | None:
    """Send one notification through ``service`` (the send service) if it is still to be sent; its status
    after (None when another sender has it). Never raises for a refused send: the refusal is recorded."""
    if rights is None:
        from saas.billing import entitlements

        rights = entitlements.for_tenant(tenant)
    claimed = _claim(session, tenant.id, notification_id, now or utcnow())
    if claimed is None:
        return None
    if claimed.phone_number_id is None:
        _settle(session, notification_id, status=FAILED, error_code="not_found",
                error_title="The number this notification was to go from is gone.")
        return FAILED
    try:
        message = outbound(claimed.payload)
        result = service.send(tenant, rights, claimed.phone_number_id, message.payload,
                              idempotency_key=f"{KEY_PREFIX}{notification_id}", to_input=message.to_input,
                              upstream=message.upstream)
    except ApiError as exc:
        log.info("order notification %s refused: %s", notification_id, exc.code)
        _settle(session, notification_id, status=FAILED, error_code=exc.code[:40], error_title=exc.message[:300],
                message_id=(exc.details or {}).get("message_id") if isinstance(exc.details, dict) else None)
        return FAILED
    _settle(session, notification_id, status=SENT, message_id=result.message_id, sent_at=utcnow(),
            error_code=None, error_title=None)
    return SENT


def deliver_due(session, service, *, older_than: timedelta = LEASE, limit: int = 100) -> int:
    """The sweep: notifications a crash left pending or claimed past the lease, sent; how many were tried."""
    from saas.tenants.services import tenant_snapshot

    now = utcnow()
    # As the partial index ix_order_notifications_open is written, so it serves the sweep.
    rows = session.execute(select(NOTIFICATIONS.c.id, NOTIFICATIONS.c.tenant_id).where(
        NOTIFICATIONS.c.status.in_((PENDING, SENDING)), NOTIFICATIONS.c.created_at < now - older_than)
        .order_by(NOTIFICATIONS.c.created_at).limit(limit)).all()
    session.rollback()
    for notification_id, tenant_id in rows:
        tenant = tenant_snapshot(tenant_id)
        if tenant is not None:
            deliver(session, service, tenant, notification_id, now=now)
    return len(rows)
