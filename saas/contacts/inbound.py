"""Contacts made from inbound messages: whoever writes to a tenant's number is its contact from then on.

The consumer of messaging's ``message.received`` (subscribed in saas.contacts.consumers). For each sender
of a batch of events: found by its WhatsApp id (or Meta's user id), made when new (source ``inbound``, a
"created" history entry), given its WhatsApp profile name while it has none, and its ``last_inbound_at``
moved to the message's time. Set-based: a few statements per batch, whatever its size. Idempotent: an event
delivered again finds its contact, and ``last_inbound_at`` only moves forward.

Inbound contacts are stored past the plan's ``max_contacts`` too (saas.contacts.limits says why).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, or_, select, update

from saas.contacts import history
from saas.contacts.directory import parse_wa_id
from saas.contacts.models import SOURCE_INBOUND, Contact
from saas.contacts.values import NAME_LENGTH, USER_ID
from saas.database import among, insert_many
from saas.timeutil import from_timestamp, utcnow

ACTOR = "whatsapp"
# WhatsApp's own messages about the user (a number change) are not the user writing.
NOT_WRITTEN = frozenset({"system"})


@dataclass
class Sender:
    tenant_id: int
    wa_id: str | None
    user_id: str | None
    name: str | None
    wrote_at: datetime | None

    @property
    def key(self) -> tuple:
        return (self.tenant_id, self.wa_id or f"user:{self.user_id}")


def record_senders(conn, events) -> int:
    """The consumer: every sender of ``events`` stored as a contact of its tenant; how many were new."""
    senders: dict[tuple, Sender] = {}
    for event in events:
        sender = sender_of(event)
        if sender is None:
            continue
        earlier = senders.get(sender.key)
        if earlier is None:
            senders[sender.key] = sender
        else:
            earlier.name = earlier.name or sender.name
            earlier.wrote_at = _later(earlier.wrote_at, sender.wrote_at)
    if not senders:
        return 0
    found = _found(conn, list(senders.values()))
    missing = [s for s in senders.values() if s.key not in found]
    created = _create(conn, missing)
    found.update(_found(conn, [s for s in missing if s.key not in created]))
    _update(conn, [(found[s.key], s) for s in senders.values() if s.key in found])
    return len(created)


def contact_ids(conn, keys) -> dict[tuple[int, str], int]:
    """The contacts of (tenant, WhatsApp id or Meta user id) ``keys``, made when new (source ``inbound``, as
    a customer's thread makes them): {key: contact id}. Set-based, like ``record_senders``."""
    senders = {}
    for tenant_id, key in keys:
        parsed = parse_wa_id(key)
        senders[(tenant_id, key)] = Sender(tenant_id, parsed.digits if parsed else None,
                                           None if parsed else key[:100], None, None)
    found = {key: row[0] for key, row in _found(conn, list(senders.values())).items()}
    missing = [sender for sender in senders.values() if sender.key not in found]
    found.update(_create(conn, missing))
    found.update({key: row[0] for key, row in _found(conn, [s for s in missing if s.key not in found]).items()})
    return {key: found[sender.key] for key, sender in senders.items() if sender.key in found}


def sender_of(event) -> Sender | None:
    """The sender an event's payload names: WhatsApp id digits and/or user id, profile name, time."""
    payload = event.payload
    message = payload.get("object") if isinstance(payload.get("object"), dict) else {}
    contact = payload.get("contact") if isinstance(payload.get("contact"), dict) else {}
    wa_id = _wa_id(message.get("from")) or _wa_id(contact.get("wa_id"))
    user_id = next((value for value in (message.get("from_user_id"), contact.get("user_id"))
                    if isinstance(value, str) and USER_ID.fullmatch(value)), None)
    if wa_id is None and user_id is None:
        return None
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    written = message.get("type") not in NOT_WRITTEN
    return Sender(event.tenant_id, wa_id, user_id, _name(profile.get("name")),
                  _moment(message.get("timestamp"), event.created_at) if written else None)


def _wa_id(value) -> str | None:
    parsed = parse_wa_id(value) if isinstance(value, str) else None
    return parsed.digits if parsed is not None else None


def _name(value) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join("".join(ch for ch in value if ch.isprintable()).split())
    return text[:NAME_LENGTH] or None


def _moment(value, default: datetime | None) -> datetime:
    try:
        seconds = int(str(value))
    except (TypeError, ValueError):
        return default or utcnow()
    return from_timestamp(seconds) if 946_684_800 <= seconds <= 7_258_118_400 else default or utcnow()


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a and b else a or b


def _found(conn, senders: list[Sender]) -> dict[tuple, tuple]:
    """{sender key: (id, name, last_inbound_at)} of the stored contacts among ``senders``: found by the
    WhatsApp id, else by Meta's user id."""
    by_tenant: dict[int, list[Sender]] = {}
    for sender in senders:
        by_tenant.setdefault(sender.tenant_id, []).append(sender)
    found = {}
    for tenant_id, group in by_tenant.items():
        wa_ids = sorted({s.wa_id for s in group if s.wa_id})
        user_ids = sorted({s.user_id for s in group if s.user_id})
        either = or_(among(conn, Contact.wa_id, wa_ids), among(conn, Contact.user_id, user_ids))
        rows = conn.execute(select(Contact.id, Contact.wa_id, Contact.user_id, Contact.name, Contact.last_inbound_at)
                            .where(Contact.tenant_id == tenant_id, either)).all()
        by_wa = {row.wa_id: row for row in rows if row.wa_id}
        by_user = {row.user_id: row for row in rows if row.user_id}
        for sender in group:
            row = by_wa.get(sender.wa_id) or by_user.get(sender.user_id)
            if row is not None:
                found[sender.key] = (row.id, row.name, row.last_inbound_at)
    return found


def _create(conn, senders: list[Sender]) -> dict[tuple, int]:
    """Insert the new senders' contacts; {key: id} of those inserted (one that either key finds, made
    meanwhile by another path, is left out: the caller finds it)."""
    if not senders:
        return {}
    now = utcnow()
    rows = insert_many(conn, Contact.__table__, [
        {"tenant_id": s.tenant_id, "wa_id": s.wa_id, "user_id": s.user_id, "name": s.name,
         "country": parse_wa_id(s.wa_id).country if s.wa_id else None, "attributes": {},
         "source": SOURCE_INBOUND, "last_inbound_at": s.wrote_at, "created_at": now, "updated_at": now}
        for s in senders], returning=("id", "tenant_id", "wa_id", "user_id"), skip_conflicts=True)  # either key
    created = {(row.tenant_id, row.wa_id or f"user:{row.user_id}"): row.id for row in rows}
    by_tenant: dict[int, list[int]] = {}
    for (tenant_id, _), contact_id in created.items():
        by_tenant.setdefault(tenant_id, []).append(contact_id)
    for tenant_id, ids in by_tenant.items():
        history.record_many(conn, tenant_id, [(contact_id, history.CREATED, {}) for contact_id in ids],
                            source=SOURCE_INBOUND, actor=ACTOR)
    return created


def _update(conn, pairs) -> None:
    """A stored contact learns its WhatsApp profile name (while it has none) and when it last wrote. Its keys
    stay as they are: a contact's WhatsApp id and user id change only by the tenant's hand."""
    params = []
    for (contact_id, name, last), sender in pairs:
        wrote = _later(last, sender.wrote_at)
        if (name or not sender.name) and wrote == last:
            continue
        params.append({"b_id": contact_id, "b_name": name or sender.name, "b_last": wrote})
    if params:
        table = Contact.__table__
        conn.execute(update(table).where(table.c.id == bindparam("b_id")).values(
            name=bindparam("b_name"), last_inbound_at=bindparam("b_last")), params)
