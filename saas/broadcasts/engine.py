"""Sending a broadcast's recipients: claim a batch, mark it ``sending`` and commit, send it through the
send service, record each outcome.

A claim is one short transaction: the broadcast's row locked (on PostgreSQL ``FOR NO KEY UPDATE``:
one claim of a broadcast at a time, a pause or cancel committed before it stops it and one committed
after it waits for it), its due ``queued`` recipients taken in id order with ``FOR UPDATE SKIP LOCKED``
(rows a status webhook or a cancel is writing are left for the next claim; SQLite has one writer at a
time), the ones who opted out since the start skipped, the rest marked ``sending``. Workers take turns
claiming a broadcast and send their batches side by side. Only then does the batch go to ``send_many``, each message carrying its
recipient in ``biz_opaque_callback_data`` ("broadcast:<recipient id>"), and its results are
written where the recipients are still ``sending``. A worker killed anywhere in between leaves
``sending`` rows, which recovery settles from the messages the send service wrote
(saas.broadcasts.recovery): a recipient is never sent twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, exists, func, select, update

from saas.billing import entitlements
from saas.broadcasts.check import consents_for
from saas.broadcasts.models import (
    COMPLETED, FAILED, QUEUED, RUNNING, SENDING, SENT, SKIPPED, Broadcast, BroadcastRecipient,
)
from saas.broadcasts.outcomes import Outcome, of_refusal
from saas.broadcasts.templates import variables_of
from saas.broadcasts.variables import components_for
from saas.contacts.models import OPTED_OUT
from saas.errors import ApiError
from saas.messaging.models import PhoneNumber
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "broadcast:"
# A batch whose sender was refused (suspended, number gone) is tried again this much later.
SENDER_REFUSED_WAIT = timedelta(minutes=1)
RECIPIENT = BroadcastRecipient.__table__
# One write per batch: each recipient's outcome, where it is still the claim's.
RECORD = (update(RECIPIENT).where(RECIPIENT.c.id == bindparam("rid"), RECIPIENT.c.status == SENDING)
          .values(status=bindparam("new_status"), error_code=bindparam("code"), error_title=bindparam("title"),
                  skip_reason=bindparam("reason"), next_attempt_at=bindparam("next_at"),
                  message_id=func.coalesce(bindparam("mid"), RECIPIENT.c.message_id),
                  wa_message_id=func.coalesce(bindparam("wamid"), RECIPIENT.c.wa_message_id),
                  sent_at=bindparam("sent_at"), failed_at=bindparam("failed_at"), updated_at=bindparam("now")))


def callback_value(recipient_id: int) -> str:
    return f"{CALLBACK_PREFIX}{recipient_id}"


def recipient_named(value) -> int | None:
    """The recipient id in a tenant value of biz_opaque_callback_data, if it names one."""
    if isinstance(value, str) and value.startswith(CALLBACK_PREFIX) and value[len(CALLBACK_PREFIX):].isdigit():
        number = int(value[len(CALLBACK_PREFIX):])
        return number if 0 < number < 2 ** 63 else None
    return None


def postgres(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@dataclass(frozen=True)
class Claimed:
    """A recipient taken for sending, read before the claim committed."""

    id: int
    wa_id: str
    variables: dict
    attempts: int             # this try included
    error_code: str | None    # the last try's


@dataclass(frozen=True)
class Batch:
    broadcast_id: int
    tenant_id: int
    number_pk: int
    template_name: str
    template_language: str
    retry_per_user_limit: bool
    recipients: list


def claim(session, broadcast_id: int, limit: int, now=None) -> Batch | None:
    """Take up to ``limit`` due recipients of running broadcast ``broadcast_id`` for sending. Commits.

    None when the broadcast is not running (or its recipients are not all written yet)."""
    now = now or utcnow()
    try:
        query = select(Broadcast).where(Broadcast.id == broadcast_id).execution_options(populate_existing=True)
        broadcast = session.scalar(query.with_for_update(key_share=True) if postgres(session) else query)
        if broadcast is None or broadcast.status != RUNNING or broadcast.frozen_at is None:
            session.commit()
            return None
        due = (select(BroadcastRecipient.id, BroadcastRecipient.contact_id, BroadcastRecipient.wa_id,
                      BroadcastRecipient.variables, BroadcastRecipient.attempts, BroadcastRecipient.error_code).where(
            BroadcastRecipient.tenant_id == broadcast.tenant_id, BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.status == QUEUED,
            (BroadcastRecipient.next_attempt_at.is_(None)) | (BroadcastRecipient.next_attempt_at <= now))
            .order_by(BroadcastRecipient.id).limit(limit))
        if postgres(session):
            due = due.with_for_update(skip_locked=True)
        rows = _without_opted_out(session, broadcast, session.execute(due).all(), now)
        batch = Batch(broadcast.id, broadcast.tenant_id, broadcast.phone_number_id, broadcast.template_name,
                      broadcast.template_language, broadcast.retry_per_user_limit,
                      [Claimed(r.id, r.wa_id, r.variables or {}, r.attempts + 1, r.error_code) for r in rows])
        if rows:
            session.execute(update(BroadcastRecipient).where(BroadcastRecipient.id.in_([r.id for r in rows]))
                            .values(status=SENDING, claimed_at=now, attempts=BroadcastRecipient.attempts + 1,
                                    updated_at=now).execution_options(synchronize_session=False))
        broadcast.last_batch_at = now
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return batch


def _without_opted_out(session, broadcast, rows: list, now) -> list:
    """A marketing broadcast's recipients who opted out since it started are skipped, not sent."""
    if not rows or broadcast.template_category.upper() != "MARKETING":
        return rows
    consents = consents_for(session, broadcast.tenant_id, broadcast.phone_number_id, [r.contact_id for r in rows])
    out = [r.id for r in rows if consents.get(r.contact_id) == OPTED_OUT]
    if out:
        session.execute(update(BroadcastRecipient).where(BroadcastRecipient.id.in_(out))
                        .values(status=SKIPPED, skip_reason="opted_out", updated_at=now)
                        .execution_options(synchronize_session=False))
    return [r for r in rows if r.id not in set(out)]


def item(batch: Batch, variables: list[str], recipient: Claimed) -> dict:
    """The Cloud API body of one recipient's message."""
    template = {"name": batch.template_name, "language": {"code": batch.template_language}}
    components = components_for(recipient.variables, variables)
    if components:
        template["components"] = components
    return {"messaging_product": "whatsapp", "to": recipient.wa_id, "type": "template", "template": template,
            "biz_opaque_callback_data": callback_value(recipient.id)}


def send_batch(session, service, broadcast_id: int, limit: int, *, clock=utcnow, pool=None) -> int:
    """Claim, send and record one batch of ``broadcast_id``; how many recipients were claimed. A
    broadcast with nothing left to send is completed. ``pool``: the sender's threads for WhatsApp's calls."""
    batch = claim(session, broadcast_id, limit, clock())
    if batch is None:
        return 0
    if not batch.recipients:
        complete_if_done(session, broadcast_id, clock())
        return 0
    tenant = tenant_snapshot(batch.tenant_id)
    number = session.get(PhoneNumber, batch.number_pk)
    variables = variables_of(session, session.get(Broadcast, broadcast_id), number)
    items = [item(batch, variables, r) for r in batch.recipients]
    phone_number_id = number.phone_number_id
    session.commit()
    try:
        results = service.send_many(tenant, phone_number_id, items, rights=entitlements.for_tenant(tenant), pool=pool)
    except ApiError as exc:
        # The sender itself was refused and nothing was sent (send_many's promise): all go back.
        log.warning("broadcast %s batch refused: %s", broadcast_id, exc.code)
        wait = clock() + SENDER_REFUSED_WAIT
        record(session, [(r.id, Outcome(QUEUED, exc.code, exc.message[:300], next_attempt_at=wait))
                         for r in batch.recipients], clock())
        return len(batch.recipients)
    now = clock()
    outcomes = []
    for recipient, result in zip(batch.recipients, results):
        if result.accepted:
            outcome = Outcome(SENT, message_id=result.message_id, wa_message_id=result.wa_message_id)
        else:
            outcome = of_refusal(result.error, result.message_id, recipient.attempts, batch.retry_per_user_limit,
                                 recipient.error_code, now)
        outcomes.append((recipient.id, outcome))
    record(session, outcomes, now)
    return len(batch.recipients)


def record(session, outcomes: list[tuple[int, Outcome]], now) -> None:
    """Write each claimed recipient's outcome (where it is still ``sending``). Commits."""
    params = [{"rid": rid, "new_status": o.status, "code": o.error_code, "title": o.error_title,
               "reason": o.skip_reason, "next_at": o.next_attempt_at, "mid": o.message_id,
               "wamid": o.wa_message_id, "sent_at": now if o.status == SENT else None,
               "failed_at": now if o.status == FAILED else None, "now": now} for rid, o in outcomes]
    try:
        session.connection().execute(RECORD, params)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def complete_if_done(session, broadcast_id: int, now) -> bool:
    """Mark a running broadcast completed when none of its recipients is queued or being sent. Commits."""
    broadcast = session.get(Broadcast, broadcast_id)
    left = exists().where(BroadcastRecipient.tenant_id == Broadcast.tenant_id,
                          BroadcastRecipient.broadcast_id == Broadcast.id,
                          BroadcastRecipient.status.in_((QUEUED, SENDING)))
    done = session.execute(
        update(Broadcast).where(Broadcast.id == broadcast_id, Broadcast.status == RUNNING,
                                Broadcast.frozen_at.is_not(None), ~left)
        .values(status=COMPLETED, finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if done and broadcast is not None:
        log.info("broadcast %s completed", broadcast_id)
    return bool(done)


