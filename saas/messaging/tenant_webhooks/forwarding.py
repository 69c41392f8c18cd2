"""Forwarding to the tenant's own webhook: what is forwarded, in which shape, and the ledger of deliveries.

Every status and inbound message of a tenant's numbers (live ones from
WhatsApp's webhooks, sandbox ones from the sandbox's status walk) becomes one
WebhookDelivery in Meta's own payload shape, for tenants whose plan has
``webhooks`` and that registered an active endpoint. ``forward`` is a consumer
of the domain events ``message.received`` and ``message.status_changed``
(saas.messaging.domain_events; subscribed in this package's ``consumers``):
it writes the deliveries in the transaction that takes the events from the
outbox, right after the change that raised them commits. An event is recorded
once per endpoint however often WhatsApp repeats it, or the outbox hands it
over. saas.messaging.tenant_webhooks.delivery sends them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_

from saas.billing import entitlements
from saas.errors import NotFound
from saas.extensions import db
from saas.messaging import domain_events
from saas.messaging.domain_events import NumberRef
from saas.messaging.outbound import callback_data
from saas.messaging.models import (
    DELIVERY_DELIVERED, DELIVERY_PENDING, Message, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
)
from saas.database import insert_for
from saas.tenants.scoping import get_owned, owned_query
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

FEATURE = "webhooks"
# Sandbox numbers belong to no WhatsApp Business account; their payloads name this one.
SANDBOX_WABA_ID = "0"


@dataclass(frozen=True)
class Event:
    """One status or one inbound message of a tenant's number, as WhatsApp described it."""

    number: NumberRef
    kind: str                 # "status" or "message"
    wa_message_id: str
    item: dict                # the status or message object
    contact: dict | None = None
    waba_id: str | None = None
    metadata: dict | None = None  # WhatsApp's own, passed on as it came

    @property
    def tenant_id(self) -> int:
        return self.number.tenant_id

    @property
    def event_type(self) -> str:
        detail = self.item.get("status") if self.kind == "status" else self.item.get("type")
        return f"{self.kind}.{detail}"[:50] if isinstance(detail, str) else self.kind

    @property
    def event_key(self) -> str:
        if self.kind == "status":
            return f"status:{self.wa_message_id}:{str(self.item.get('status'))[:40]}"
        return f"message:{self.wa_message_id}"

    def payload(self, kept: dict[int, str] | None = None) -> dict:
        """Meta's notification shape, holding this one event (a status with the tenant's own
        biz_opaque_callback_data, ``kept`` holding those kept on message rows)."""
        value = {"messaging_product": "whatsapp", "metadata": self.metadata or self.number.metadata}
        if self.kind == "status":
            value["statuses"] = [callback_data.as_the_tenant_sent_it(self.item, kept or {})]
        else:
            if self.contact:
                value["contacts"] = [self.contact]
            value["messages"] = [self.item]
        waba = self.waba_id or self.number.waba_id or SANDBOX_WABA_ID
        return {"object": "whatsapp_business_account",
                "entry": [{"id": waba, "changes": [{"value": value, "field": "messages"}]}]}


def body_of(payload: dict) -> bytes:
    """A payload serialised as Meta serialises its webhooks; the bytes that are signed and sent.

    Compact separators, every character outside printable ASCII as a lowercase
    ``\\uXXXX`` escape (an emoji as its surrogate pair) and ``/`` as ``\\/``. Handlers
    written for Meta verify the signature over these bytes however they do it:
    over the raw body (pywa, Meta's samples), or over the body with non-ASCII
    escaped the way Meta documents it (whatsapp-api-js), which leaves these unchanged.
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


def _may_forward(tenant_id: int) -> bool:
    tenant = tenant_snapshot(tenant_id)
    return tenant is not None and entitlements.for_tenant(tenant).may(FEATURE)


def endpoints_for(conn, tenant_ids) -> dict[int, int]:
    """{tenant id: endpoint id} of the given tenants that forward now (active endpoint, plan with webhooks)."""
    if not tenant_ids:
        return {}
    rows = conn.execute(select(WebhookEndpoint.tenant_id, WebhookEndpoint.id).where(
        WebhookEndpoint.tenant_id.in_(sorted(tenant_ids)), WebhookEndpoint.active.is_(True))).all()
    return {tenant_id: endpoint_id for tenant_id, endpoint_id in rows if _may_forward(tenant_id)}


_RECORD: dict[str, object] = {}


def _record_statement(conn):
    stmt = _RECORD.get(conn.dialect.name)
    if stmt is None:
        stmt = _RECORD[conn.dialect.name] = insert_for(conn, WebhookDelivery).on_conflict_do_nothing(
            index_elements=["tenant_id", "endpoint_id", "event_key"])
    return stmt


def record_events(conn, events: list[Event], now: datetime, *, endpoints: dict[int, int] | None = None) -> int:
    """Write a pending delivery for each event whose tenant forwards (``endpoints``, when the caller found
    them); in the caller's transaction.

    Idempotent: an event already recorded for the endpoint is skipped.
    Returns how many events were considered for forwarding.
    """
    if endpoints is None:
        endpoints = endpoints_for(conn, {event.tenant_id for event in events})
    forwarded = [e for e in events if e.tenant_id in endpoints]
    kept = _kept_callback_data(conn, forwarded)
    rows = [{"tenant_id": e.tenant_id, "endpoint_id": endpoints[e.tenant_id], "event_type": e.event_type,
             "event_key": e.event_key, "sequence_key": f"message:{e.wa_message_id}",
             "wa_message_id": e.wa_message_id, "payload": e.payload(kept.get(e.tenant_id)),
             "state": DELIVERY_PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for e in forwarded]
    if rows:
        conn.execute(_record_statement(conn), rows)
    return len(rows)


def forward(conn, events: list) -> int:
    """The consumer of ``message.received`` and ``message.status_changed``: a pending delivery for each
    event whose tenant forwards, in the delivering transaction (``record_events``)."""
    endpoints = endpoints_for(conn, {event.tenant_id for event in events})
    numbers: dict[int, NumberRef] = {}
    forwarded = [_forwarded(event, numbers) for event in events if event.tenant_id in endpoints]
    return record_events(conn, forwarded, utcnow(), endpoints=endpoints) if forwarded else 0


def _forwarded(event, numbers: dict[int, NumberRef]) -> Event:
    """A domain event (saas.messaging.domain_events) as the status or message it forwards."""
    payload = event.payload
    number = numbers.get(payload["number"]["id"])
    if number is None:
        number = numbers[payload["number"]["id"]] = NumberRef(**payload["number"])
    kind = "message" if event.type == domain_events.MESSAGE_RECEIVED else "status"
    return Event(number, kind, payload["wa_message_id"], payload["object"], contact=payload.get("contact"),
                 waba_id=payload.get("waba_id"), metadata=payload.get("metadata"))


def _kept_callback_data(conn, events: list[Event]) -> dict[int, dict[int, str]]:
    """{tenant id: {message id: value}}: tenants' biz_opaque_callback_data too long to have travelled
    to WhatsApp beside our message id, for the statuses that name one (rare: one query when any)."""
    wanted = set()
    for event in events:
        mark = callback_data.read(event.item.get(callback_data.FIELD)) if event.kind == "status" else None
        if mark is not None and mark.kept:
            wanted.add((event.tenant_id, mark.message_id))
    kept: dict[int, dict[int, str]] = {}
    if wanted:
        rows = conn.execute(select(Message.tenant_id, Message.id, Message.callback_data).where(
            tuple_(Message.tenant_id, Message.id).in_(sorted(wanted))))
        for tenant_id, message_id, value in rows:
            if value is not None:
                kept.setdefault(tenant_id, {})[message_id] = value
    return kept


# -- what the portal shows and does ---------------------------------------------------------

def list_deliveries(tenant, *, limit: int = 50, before_id: int | None = None) -> list[WebhookDelivery]:
    """The tenant's deliveries, newest first; ``before_id`` continues from the last page's final id."""
    query = owned_query(WebhookDelivery, tenant)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    return list(db.session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def get_delivery(tenant, delivery_id) -> WebhookDelivery:
    """One of the tenant's deliveries; NotFound for another tenant's, exactly as for none."""
    return get_owned(WebhookDelivery, delivery_id, tenant, what="delivery")


def attempts_of(tenant, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return list(db.session.scalars(
        owned_query(WebhookAttempt, tenant).where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.id)))


@dataclass(frozen=True)
class Replayed:
    """What a replay did: ``outcome`` is "due now" (the delivery's own pending retry goes at once),
    "copied" (a new delivery goes), "delivered meanwhile" or "in flight" (nothing more is sent)."""

    delivery: WebhookDelivery
    outcome: str


def _in_flight(delivery: WebhookDelivery, now: datetime) -> bool:
    """Whether a worker is posting it now: a try claimed, its lease still running, its outcome not written."""
    if delivery.attempts == 0 or delivery.next_attempt_at is None or delivery.next_attempt_at <= now:
        return False
    return db.session.scalar(select(WebhookAttempt.id).where(
        WebhookAttempt.tenant_id == delivery.tenant_id, WebhookAttempt.delivery_id == delivery.id,
        WebhookAttempt.number == delivery.attempts).limit(1)) is None


def replay(tenant, delivery_id, *, seen_state: str | None = None, now: datetime | None = None) -> Replayed:
    """Send one of the tenant's deliveries again now, to the endpoint's URL as it is now. Commits.

    Exactly one copy goes, however this races the delivery workers. A delivery
    still pending (or a pending copy of it from an earlier replay) is not copied:
    its retry is made due now and keeps its place among its message's events.
    One delivered or dead is copied as a new delivery, due now, that goes after
    any of the message's events still pending; but one the tenant saw pending
    (``seen_state``) and that was delivered meanwhile is not sent twice. One a
    worker is posting at this moment is left to that try.
    NotFound for another tenant's delivery, or when there is no endpoint.
    """
    now = now or utcnow()
    session = db.session
    try:
        original = get_delivery(tenant, delivery_id)
        endpoint = session.scalar(owned_query(WebhookEndpoint, tenant))
        if endpoint is None:
            raise NotFound("There is no webhook endpoint to send it to.")
        # Locked, and read again as it is once locked: replays of it wait for each other, a worker's
        # claim skips it meanwhile, and a claim made just before is seen.
        session.refresh(original, with_for_update=True)
        pending = session.scalar(
            owned_query(WebhookDelivery, tenant)
            .where(WebhookDelivery.state == DELIVERY_PENDING,
                   (WebhookDelivery.id == original.id) | (WebhookDelivery.replay_of == original.id))
            .order_by(WebhookDelivery.id).limit(1).with_for_update()
            .execution_options(populate_existing=True))
        if pending is not None:
            if _in_flight(pending, now):
                session.rollback()
                return Replayed(pending, "in flight")
            pending.next_attempt_at = now
            session.commit()
            return Replayed(pending, "due now")
        if seen_state == DELIVERY_PENDING and original.state == DELIVERY_DELIVERED:
            session.rollback()
            return Replayed(original, "delivered meanwhile")
        copy = WebhookDelivery(
            tenant_id=tenant.id, endpoint_id=endpoint.id, event_type=original.event_type,
            event_key=f"replay:{original.id}:{now.isoformat()}"[:200], sequence_key=original.sequence_key,
            wa_message_id=original.wa_message_id, payload=original.payload, state=DELIVERY_PENDING, attempts=0,
            next_attempt_at=now, created_at=now, replay_of=original.id)
        session.add(copy)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return Replayed(copy, "copied")
