"""Sending a message: entitlement, metering and the transport, in the order DESIGN.md gives."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from saas.billing import entitlements
from saas.billing.services import subscription_for
from saas.errors import FeatureNotInPlan, IdempotencyConflict, InvalidRequest, TenantSuspended, UpstreamError
from saas.extensions import db
from saas.messaging.models import Conversation, Message
from saas.messaging.numbers import number_for
from saas.messaging.transports import SendResult
from saas.metering import services as metering
from saas.metering.models import METRIC_CONVERSATIONS, METRIC_MESSAGES, UsageRecord
from saas.tenants.scoping import get_owned, owned_query
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)

# The plan feature each WhatsApp message type needs.
FEATURE_FOR_TYPE = {
    "text": "text",
    "reaction": "text",
    "location": "text",
    "contacts": "text",
    "template": "template",
    "image": "media",
    "audio": "media",
    "video": "media",
    "document": "media",
    "sticker": "media",
    "interactive": "interactive",
}


def category_for(payload: dict) -> str:
    """The conversation category a send opens.

    Free-form messages are customer-service replies. A template's category is
    set when it is approved by Meta; until templates are synced from the
    WhatsApp Business account, templates are metered as marketing, the
    category Meta applies when it is unsure.
    """
    if payload["type"] == "template":
        return "marketing"
    return "service"


def summarise(payload: dict) -> str:
    kind = payload["type"]
    body = payload.get(kind) or {}
    if kind == "text":
        text = body.get("body", "")
    elif kind == "template":
        text = f"template {body.get('name')} ({(body.get('language') or {}).get('code')})"
    elif kind in ("image", "video", "document", "audio", "sticker"):
        text = body.get("caption") or body.get("filename") or body.get("link") or body.get("id") or kind
    elif kind == "interactive":
        text = ((body.get("body") or {}).get("text")) or f"interactive {body.get('type')}"
    elif kind == "reaction":
        text = f"reaction {body.get('emoji', '')}"
    elif kind == "location":
        text = body.get("name") or f"{body.get('latitude')},{body.get('longitude')}"
    else:
        text = kind
    text = str(text)
    return text if len(text) <= 300 else text[:297] + "..."


def request_hash(phone_number_id: str, payload: dict) -> str:
    canonical = json.dumps({"number": phone_number_id, "payload": payload}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class SendOutcome:
    message: Message
    replayed: bool


def graph_response(message: Message, to_input: str) -> dict:
    """The Cloud API's success body for a send."""
    entry = {"id": message.wa_message_id}
    if message.type == "template":
        entry["message_status"] = "accepted"
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to_input, "wa_id": message.wa_id}],
        "messages": [entry],
    }


def _upstream_error(message: Message) -> UpstreamError:
    return UpstreamError(message.error_title or UpstreamError.message,
                         details={"whatsapp_code": message.error_code, "message_id": message.id},
                         graph_code=message.error_code)


def _replay(message: Message, digest: str) -> SendOutcome:
    if message.request_hash != digest:
        raise IdempotencyConflict(details={"message_id": message.id})
    if message.status == "pending":
        raise IdempotencyConflict("A request with this Idempotency-Key is still being processed; retry shortly.",
                                  details={"message_id": message.id})
    if message.status == "failed" and message.wa_message_id is None:
        raise _upstream_error(message)
    return SendOutcome(message=message, replayed=True)


def _find_by_key(tenant, key: str) -> Message | None:
    return db.session.scalar(owned_query(Message, tenant).where(Message.idempotency_key == key))


def open_window(tenant_id: int, contact: str, category: str, now, period_start) -> tuple[Conversation, bool]:
    """The open conversation for (tenant, contact, category), opening one if none is.

    Returns (conversation, opened). Safe under concurrency: a window is opened
    under the unique (tenant, contact, category, seq) constraint, so of two
    sends racing to open it one inserts and the other joins that window.
    """
    # FOR NO KEY UPDATE (key_share): serialises sends into one window without
    # blocking the foreign-key checks of other transactions' message rows,
    # which would otherwise close a deadlock cycle with the idempotency index.
    for _ in range(5):
        latest = db.session.scalar(
            select(Conversation)
            .where(Conversation.tenant_id == tenant_id, Conversation.contact == contact,
                   Conversation.category == category)
            .order_by(Conversation.seq.desc()).limit(1).with_for_update(key_share=True))
        if latest is not None and latest.expires_at > now:
            return latest, False
        conversation = Conversation(
            tenant_id=tenant_id, contact=contact, category=category,
            seq=(latest.seq + 1) if latest is not None else 1,
            opened_at=now, expires_at=now + WINDOW, origin="business_initiated",
            period_start=period_start)
        try:
            with db.session.begin_nested():
                db.session.add(conversation)
        except IntegrityError:
            continue
        return conversation, True
    raise RuntimeError("could not open or join a conversation window")


def send_message(tenant, phone_number_id: str, payload: dict, *, idempotency_key: str | None = None,
                 to_input: str | None = None) -> SendOutcome:
    """Send one validated Cloud API message body from one of the tenant's numbers.

    Metered exactly once: the window, counters, message row and usage record
    are written in one transaction before the transport is called; an upstream
    failure reverses them. With an Idempotency-Key the first result is
    returned again for the same body. Raises TenantSuspended, NotFound,
    FeatureNotInPlan, QuotaExceeded, IdempotencyConflict or UpstreamError.
    """
    subscription = subscription_for(tenant)
    rights = entitlements.for_tenant(tenant, subscription)
    if rights.suspended:
        raise TenantSuspended()
    number = number_for(tenant, phone_number_id)
    feature = FEATURE_FOR_TYPE[payload["type"]]
    if not rights.may(feature):
        raise FeatureNotInPlan(
            f"Your {rights.effective.name} plan does not include '{payload['type']}' messages.",
            details={"feature": feature, "type": payload["type"], "plan": rights.effective.code},
            upgrade=True)
    digest = request_hash(phone_number_id, payload)
    if idempotency_key:
        earlier = _find_by_key(tenant, idempotency_key)
        if earlier is not None:
            return _replay(earlier, digest)

    transport = current_app.extensions["transports"].for_number(number)
    if transport is None:
        raise UpstreamError("Live numbers are not enabled on this server.", graph_code=131000)

    now = utcnow()
    period = metering.current_period(subscription, now)
    category = category_for(payload)
    cap = rights.included_conversations if rights.hard_cap else None
    try:
        conversation, opened = open_window(tenant.id, payload["to"], category, now, period.start)
        message = Message(
            tenant_id=tenant.id, phone_number_id=number.id, direction="out", wa_id=payload["to"],
            type=payload["type"], body_summary=summarise(payload), status="pending",
            conversation_id=conversation.id, opened_conversation=opened,
            idempotency_key=idempotency_key or None, request_hash=digest, created_at=now)
        db.session.add(message)
        db.session.flush()
        if opened:
            db.session.add(UsageRecord(
                tenant_id=tenant.id, metric=METRIC_CONVERSATIONS, quantity=1,
                identifier=f"conv_{uuid.uuid4().hex}", message_id=message.id,
                period_start=period.start, created_at=now))
            db.session.flush()
        # The tenant's counter rows are its hottest rows: touched last, so
        # their locks are held only for the commit.
        if opened:
            metering.count_conversation(tenant.id, period.start, category, cap=cap)
        metering.increment(tenant.id, period.start, METRIC_MESSAGES)
        db.session.commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key committed first.
        db.session.rollback()
        earlier = _find_by_key(tenant, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return _replay(earlier, digest)
    except Exception:
        db.session.rollback()
        raise

    try:
        result = transport.send(number, payload)
    except Exception:
        # Whatever broke, the send did not happen: un-bill it like any refusal.
        log.exception("transport raised")
        result = SendResult(ok=False, error_code=131000, error_title="Something went wrong")
    if not result.ok:
        _reverse(message, period.start, result)
        raise _upstream_error(message)

    message.wa_message_id = result.wa_message_id
    message.status = "accepted"
    message.response_status = 200
    message.response_body = graph_response(message, to_input or payload["to"])
    db.session.commit()
    log.info("message accepted", extra={"status": message.status})
    transport.after_accept(message)
    return SendOutcome(message=message, replayed=False)


def _reverse(message: Message, period_start, result) -> None:
    """Un-bill a send WhatsApp refused, undoing each increment the way it was made.

    The window goes too, unless another live send already stands in it (that
    send then carries the window's charge).
    """
    conversation = None
    if message.conversation_id is not None:
        conversation = db.session.scalar(
            select(Conversation).where(Conversation.id == message.conversation_id).with_for_update(key_share=True))
    metering.decrement(message.tenant_id, period_start, METRIC_MESSAGES)
    if message.opened_conversation and conversation is not None:
        others = db.session.scalar(select(exists().where(
            Message.conversation_id == conversation.id, Message.id != message.id,
            Message.status != "failed")))
        if not others:
            metering.uncount_conversation(message.tenant_id, conversation.period_start, conversation.category)
            for record in db.session.scalars(select(UsageRecord).where(UsageRecord.message_id == message.id)):
                record.voided_at = utcnow()
            message.conversation_id = None
            message.opened_conversation = False
            db.session.delete(conversation)
    message.status = "failed"
    message.failed_at = utcnow()
    message.error_code = result.error_code
    message.error_title = result.error_title
    message.response_status = 502
    db.session.commit()
    log.warning("send failed upstream", extra={"status": result.error_code})


def list_messages(tenant, *, limit: int, before_id: int | None = None) -> list[Message]:
    """Newest first; ``before_id`` continues from the last page's final id."""
    query = owned_query(Message, tenant)
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return list(db.session.scalars(query.order_by(Message.id.desc()).limit(limit)))


def get_message(tenant, message_id) -> Message:
    return get_owned(Message, message_id, tenant, what="message")


def mark_read(tenant, phone_number_id: str, wa_message_id: str) -> None:
    """The Cloud API's mark-as-read call, for a message this number received."""
    number = number_for(tenant, phone_number_id)
    message = db.session.scalar(owned_query(Message, tenant).where(
        Message.wa_message_id == wa_message_id, Message.phone_number_id == number.id))
    if message is None:
        raise InvalidRequest(f"No message with id {wa_message_id!r} was received on this number.",
                             details={"message_id": ["Unknown message id."]})
    if message.direction == "in" and message.read_at is None:
        message.read_at = utcnow()
        message.status = "read"
        db.session.commit()
