"""Starting a broadcast: its audience written down as recipient rows, once.

The audience is read in contact-id order a chunk at a time and put through the check's own rule
(saas.broadcasts.check.assess): each contact becomes a row, ``queued`` with its variables rendered, or
``skipped`` with the check's reason. Each chunk is one transaction that also moves the broadcast's
``frozen_through`` to its last contact, under the broadcast's row lock; a crash carries on from
there, and the unique (broadcast, contact) key makes a chunk written twice write nothing. The
engine sends nothing of a broadcast until ``frozen_at`` says every row is written.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from saas.billing import entitlements
from saas.broadcasts import audience as audiences
from saas.broadcasts import check as checks
from saas.broadcasts.models import QUEUED, RUNNING, SKIPPED, Broadcast, BroadcastRecipient
from saas.broadcasts.templates import variables_of
from saas.messaging.models import PhoneNumber
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

CHUNK = 1000
CONFLICT = ("tenant_id", "broadcast_id", "contact_id")


def locked(session, broadcast_id: int) -> Broadcast | None:
    """The broadcast, its row locked for this transaction on PostgreSQL (a pause or cancel waits for it)."""
    query = select(Broadcast).where(Broadcast.id == broadcast_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def freeze(session, broadcast_id: int, *, chunk: int = CHUNK, budget: int | None = None) -> bool:
    """Write the recipients of running broadcast ``broadcast_id`` not written yet, a chunk per
    transaction; True once all are (``frozen_at``). ``budget``: at most that many chunks this call."""
    rules = None
    done = 0
    while budget is None or done < budget:
        try:
            broadcast = locked(session, broadcast_id)
            if broadcast is None or broadcast.status != RUNNING or broadcast.frozen_at is not None:
                session.commit()
                return broadcast is not None and broadcast.frozen_at is not None
            if rules is None:
                rules, tally, number = _begin(session, broadcast)
            finished = _chunk(session, broadcast, number, rules, tally, chunk)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        done += 1
        if finished:
            return True
    return False


def _begin(session, broadcast):
    """The rules as they are now, and the tally of the rows a crashed freeze already wrote."""
    tenant = tenant_snapshot(broadcast.tenant_id)
    rights = entitlements.for_tenant(tenant)
    number = session.get(PhoneNumber, broadcast.phone_number_id)
    rules = checks.rules_for(session, tenant, rights, broadcast, number, variables_of(session, broadcast, number))
    tally = checks.Tally()
    tally.recipients = session.scalar(select(func.count()).select_from(BroadcastRecipient).where(
        BroadcastRecipient.tenant_id == broadcast.tenant_id, BroadcastRecipient.broadcast_id == broadcast.id,
        BroadcastRecipient.status != SKIPPED)) or 0
    return rules, tally, number


def _chunk(session, broadcast, number, rules, tally, size: int) -> bool:
    """One chunk of the audience written; True when it was the last."""
    now = utcnow()
    after = broadcast.frozen_through or 0
    rows = list(session.scalars(audiences.contacts_query(broadcast.tenant_id, broadcast.audience, after, size)))
    contacts = [row for row in rows if audiences.matches(row, broadcast.audience)]
    consents = checks.consents_for(session, broadcast.tenant_id, number.id, [c.id for c in contacts])
    decisions = checks.assess(contacts, consents, rules, tally)
    records = [_record(broadcast, decision, now) for decision in decisions]
    if records:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(insert(BroadcastRecipient.__table__).on_conflict_do_nothing(index_elements=list(CONFLICT)),
                        records)
    broadcast.recipients_total = (broadcast.recipients_total or 0) + len(records)
    broadcast.updated_at = now
    if rows:
        broadcast.frozen_through = rows[-1].id
    last = len(rows) < size
    if last:
        broadcast.frozen_at = now
    return last


def _record(broadcast, decision, now) -> dict:
    return {"tenant_id": broadcast.tenant_id, "broadcast_id": broadcast.id, "contact_id": decision.contact.id,
            "wa_id": decision.wa_id, "country": decision.country,
            "variables": decision.values if decision.reason is None else {},
            "status": QUEUED if decision.reason is None else SKIPPED, "skip_reason": decision.reason,
            "error_code": None, "error_title": None, "attempts": 0, "next_attempt_at": None, "claimed_at": None,
            "message_id": None, "wa_message_id": None, "created_at": now, "updated_at": now, "sent_at": None,
            "delivered_at": None, "read_at": None, "failed_at": None}
