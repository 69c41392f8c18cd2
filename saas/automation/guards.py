"""Loop guards: an automation never answers an automation.

- A message that is an automated send of ours (its WhatsApp id is one of our outbound messages sent by a
  rule: two of our numbers talking) never triggers a rule.
- A message from one of our own numbers whose last message to this number in the past hour was an
  automated reply never triggers a reply either: two numbers of the product that auto-reply to each other
  stop at the first answer.
- At most the tenant's ``replies_per_hour`` automated replies go to one thread (customer and number) per
  hour, whatever triggers them.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, tuple_

from saas.automation.models import PENDING, SENDING, SENT, Run
from saas.messaging.models import Message, PhoneNumber

HOUR = timedelta(hours=1)
AUTOMATED = "automation:"


# Built once (these run for every inbound message a rule answers).
_NUMBERS_ENDING = select(PhoneNumber.id, PhoneNumber.tenant_id, PhoneNumber.display_number).where(
    PhoneNumber.display_number.like(bindparam("ending")))
_LAST_SENT = (select(Message.idempotency_key).where(
    Message.tenant_id == bindparam("tenant_id"), Message.phone_number_id == bindparam("number_id"),
    Message.wa_id == bindparam("wa_id"), Message.direction == "out", Message.created_at >= bindparam("since"))
    .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))
_REPLIES_SINCE = select(func.count(Run.id)).where(
    Run.tenant_id == bindparam("tenant_id"), Run.phone_number_id == bindparam("number_pk"),
    Run.wa_id == bindparam("wa_id"), Run.created_at > bindparam("since"), Run.created_at <= bindparam("now"),
    Run.status.in_((PENDING, SENDING, SENT)))


def digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def sent_by_automation(conn, wa_message_id: str) -> bool:
    """Whether the message is one of our outbound messages that a rule sent."""
    key = conn.execute(select(Message.idempotency_key).where(Message.wa_message_id == wa_message_id,
                                                             Message.direction == "out")).scalar()
    return bool(key and key.startswith(AUTOMATED))


def sent_by_automation_among(conn, wa_message_ids) -> set[str]:
    """Those of ``wa_message_ids`` that are outbound messages of ours a rule sent (one query for a batch)."""
    wanted = sorted(set(wa_message_ids))
    if not wanted:
        return set()
    rows = conn.execute(select(Message.wa_message_id, Message.idempotency_key).where(
        Message.wa_message_id.in_(wanted), Message.direction == "out")).all()
    return {wamid for wamid, key in rows if key and key.startswith(AUTOMATED)}


def from_automated_number(conn, our_display_number: str, sender: str, now: datetime) -> bool:
    """Whether ``sender`` is one of our numbers (any tenant's) whose last message to ``our_display_number``
    within the hour was an automated reply."""
    ours, theirs = digits(our_display_number), digits(sender)
    if not ours or not theirs:
        return False
    candidates = conn.execute(_NUMBERS_ENDING, {"ending": f"%{theirs[-4:]}"}).all()
    for number_id, tenant_id, display in candidates:
        if digits(display) != theirs:
            continue
        key = conn.execute(_LAST_SENT, {"tenant_id": tenant_id, "number_id": number_id, "wa_id": ours,
                                        "since": now - HOUR}).scalar()
        if key and key.startswith(AUTOMATED):
            return True
    return False


def replies_in_hour(conn, tenant_id: int, number_pk: int, wa_id: str, now: datetime) -> int:
    """Automated replies to the thread in the hour before ``now`` (sent, or on their way)."""
    return conn.execute(_REPLIES_SINCE, {"tenant_id": tenant_id, "number_pk": number_pk, "wa_id": wa_id,
                                         "since": now - HOUR, "now": now}).scalar()


class BatchGuards:
    """The loop guards for a batch of inbound messages: what ``from_automated_number`` and
    ``replies_in_hour`` read, read for all of them in one statement each, and the replies the batch queues
    counted as it goes (as the database would count them, in the batch's transaction)."""

    def __init__(self, conn, messages, now: datetime):
        self.conn, self.now = conn, now
        self.logged: set[int] = set()  # threads a run was logged on, marked updated at the batch's end
        keys = sorted({(m.tenant_id, m.number_pk, m.wa_id) for m in messages})
        self.replies: dict[tuple, int] = {}
        if keys:
            self.replies = {(t, n, w): count for t, n, w, count in conn.execute(
                select(Run.tenant_id, Run.phone_number_id, Run.wa_id, func.count(Run.id))
                .where(tuple_(Run.tenant_id, Run.phone_number_id, Run.wa_id).in_(keys),
                       Run.created_at > now - HOUR, Run.created_at <= now, Run.status.in_((PENDING, SENDING, SENT)))
                .group_by(Run.tenant_id, Run.phone_number_id, Run.wa_id))}
        endings = sorted({digits(m.wa_id)[-4:] for m in messages if digits(m.wa_id)})
        self.numbers = conn.execute(select(PhoneNumber.id, PhoneNumber.tenant_id, PhoneNumber.display_number).where(
            or_(*(PhoneNumber.display_number.like(f"%{ending}") for ending in endings)))).all() if endings else []

    def from_automated_number(self, our_display_number: str, sender: str) -> bool:
        """``from_automated_number`` at the batch's moment."""
        ours, theirs = digits(our_display_number), digits(sender)
        if not ours or not theirs:
            return False
        for number_id, tenant_id, display in self.numbers:
            if not (display or "").endswith(theirs[-4:]) or digits(display) != theirs:
                continue
            key = self.conn.execute(_LAST_SENT, {"tenant_id": tenant_id, "number_id": number_id, "wa_id": ours,
                                                 "since": self.now - HOUR}).scalar()
            if key and key.startswith(AUTOMATED):
                return True
        return False

    def replies_in_hour(self, tenant_id: int, number_pk: int, wa_id: str) -> int:
        """``replies_in_hour`` at the batch's moment, the replies it queued so far included."""
        return self.replies.get((tenant_id, number_pk, wa_id), 0)

    def queued(self, tenant_id: int, number_pk: int, wa_id: str) -> None:
        key = (tenant_id, number_pk, wa_id)
        self.replies[key] = self.replies.get(key, 0) + 1
