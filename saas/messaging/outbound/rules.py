"""WhatsApp's own rules, enforced in the send path before anything leaves or is billed.

Meta refuses these sends itself; refusing them here first means no upstream
call, no window opened, nothing metered, and the same answer from a sandbox
number as from a live one (the refusals carry Meta's codes):

- the customer-service window (131047): a free-form (non-template) message
  only within 24 hours of the contact's latest message to the number;
- templates (132001, 132015, 132016): only an APPROVED template of the
  number's WhatsApp Business Account, in the language asked for;
- the pair rate (131056): about one message per 6 s from a number to one
  contact, short bursts allowed;
- the messaging limit (131048): the unique users a number may reach with
  business-initiated messages (templates outside the window) in a moving 24 h.

The first three are decided by ``WhatsAppRules.admit`` before the send's
transaction; the messaging limit is decided inside it, under a lock per
number (``enforce_messaging_limit``), so concurrent sends never pass it.
"""
from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Integer, bindparam, distinct, exists, func, select, text

from saas.errors import MessagingLimitReached, OutsideCustomerServiceWindow, PairRateLimited, WhatsAppRule
from saas.messaging.outbound.bodies import category_for
from saas.messaging.models import MODE_SANDBOX, Message
from saas.messaging.numbers.phone_numbers import SANDBOX_MESSAGING_LIMIT_TIER
from saas.messaging.outbound.types import TYPES
from saas.messaging.outbound.windows import (
    contact_histories, customer_service_window_open, sandbox_window_open, service_windows_of, wrote_within_window,
)

log = logging.getLogger(__name__)

# A sandbox recipient that never writes: its window is always closed, to rehearse 131047 at once.
SANDBOX_SILENT_RECIPIENT = "15550131047"

REACH_WINDOW = timedelta(hours=24)
# The first key of the two-key advisory lock that serialises a number's business-initiated sends.
REACH_LOCK_SPACE = 7_000_002

TIER = re.compile(r"^TIER_(\d{1,7})(K?)$")


def messaging_limit(tier: str | None, mode: str) -> int | None:
    """Unique users a number may reach in 24 h from its ``messaging_limit_tier``; None for no limit of ours.

    TIER_UNLIMITED has none. A live number whose tier is not known (not read
    from Graph yet, or a name Meta adds later) gets none here either: we
    never refuse what Meta might allow, and Meta still enforces its limit.
    A sandbox number without a tier has TIER_250's.
    """
    if tier is None and mode == MODE_SANDBOX:
        tier = SANDBOX_MESSAGING_LIMIT_TIER
    match = TIER.match(tier or "")
    if match is None:
        return None
    return int(match.group(1)) * (1000 if match.group(2) else 1)


class PairRate:
    """About one message per ``seconds`` from a number to one contact, ``burst`` of them at once.

    A moving window of ``burst`` messages per ``burst * seconds`` per (number,
    contact) key, in the ``limits`` storage given (the app's rate-limit store: Redis
    when REDIS_URL is set, so every process shares it; memory otherwise).
    ``burst`` 0 turns the check off.
    """

    def __init__(self, storage=None, *, burst: int = 5, seconds: float = 6.0, clock=time.time):
        self.burst = burst
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage()) if burst > 0 else None
        self.item = RateLimitItemPerSecond(max(burst, 1), max(1, round(max(burst, 1) * seconds)))
        self.clock = clock

    def take(self, phone_number_id: str, contact: str) -> int | None:
        """Take a place for one message: None when it may go, else the whole seconds to wait."""
        if self.limiter is None:
            return None
        keys = ("whatsapp-pair", phone_number_id, contact)
        try:
            if self.limiter.hit(self.item, *keys):
                return None
            reset = self.limiter.get_window_stats(self.item, *keys).reset_time
        except Exception:  # noqa: BLE001 - the store is down: let the send go, Meta still enforces the rate
            log.exception("pair rate store failed; the pair rate is not enforced for this send")
            return None
        return max(1, math.ceil(reset - self.clock()))


@dataclass(frozen=True)
class Admission:
    """What the rules decided about a send they let through."""

    category: str             # the metering category (a template's own; free-form: service)
    business_initiated: bool  # a template outside the contact's customer-service window
    messaging_limit: int | None = None  # to enforce in the send's transaction (business-initiated only)


class WhatsAppRules:
    """The rules a send must pass; built once per app with the templates a number may send (a
    saas.messaging.templates.message_templates.SendableTemplates) and the pair-rate store."""

    def __init__(self, templates, pair_rate: PairRate | None = None):
        self.templates = templates
        self.pair_rate = pair_rate if pair_rate is not None else PairRate()

    def admit(self, conn, tenant_id: int, number, payload: dict, now: datetime) -> Admission:
        """Decide whether WhatsApp would take this send; read-only in ``conn`` (the pair rate takes a place).

        ``number`` is the sending NumberSnapshot. Raises TemplateNotFound,
        TemplateNotApproved, TemplatePaused, TemplateDisabled,
        OutsideCustomerServiceWindow or PairRateLimited.
        """
        is_template = TYPES[payload["type"]].template
        terms = self._template(number, payload) if is_template else None
        window_open = self.window_open(conn, tenant_id, number, payload["to"], now, free_form=not is_template)
        return self._decide(number, payload, terms, window_open)

    def admit_read(self, windows: "ContactWindows", number, payload: dict) -> Admission:
        """``admit`` with the contact's window read already (``windows``, read for it among others); raises
        what ``admit`` raises. Reads nothing."""
        is_template = TYPES[payload["type"]].template
        terms = self._template(number, payload) if is_template else None
        return self._decide(number, payload, terms, windows.open(payload["to"], free_form=not is_template))

    def admit_many(self, conn, tenant_id: int, number, payloads: list[dict], now: datetime) -> list:
        """``admit`` for each payload of a batch, in order: its Admission, or the WhatsAppRule refusing it.

        Read-only in ``conn``: the contacts' windows are read for the whole
        batch at once (one statement). A sandbox recipient that the batch
        sends a free-form message counts as having written from then on, as
        it would after that message sent alone.
        """
        windows = ContactWindows.read(conn, tenant_id, number, sorted({p["to"] for p in payloads}), now)
        decided = []
        for payload in payloads:
            free_form = not TYPES[payload["type"]].template
            try:
                terms = None if free_form else self._template(number, payload)
                decided.append(self._decide(number, payload, terms, windows.open(payload["to"], free_form=free_form)))
            except WhatsAppRule as exc:
                decided.append(exc)
                continue
            if free_form:
                windows.wrote(payload["to"])
        return decided

    def _template(self, number, payload: dict):
        template = payload["template"]
        return self.templates(number, template["name"], template["language"]["code"])

    def _decide(self, number, payload: dict, terms, window_open: bool) -> Admission:
        contact = payload["to"]
        is_template = TYPES[payload["type"]].template
        category = category_for(payload, terms)
        if not is_template and not window_open:
            raise OutsideCustomerServiceWindow(details={"contact": contact})
        wait = self.pair_rate.take(number.phone_number_id, contact)
        if wait is not None:
            raise PairRateLimited(details={"contact": contact, "retry_after": wait},
                                  headers={"Retry-After": str(wait)})
        business_initiated = is_template and not window_open
        limit = messaging_limit(number.messaging_limit_tier, number.mode) if business_initiated else None
        return Admission(category, business_initiated, limit)

    @staticmethod
    def window_open(conn, tenant_id: int, number, contact: str, now: datetime, *, free_form: bool) -> bool:
        if number.mode != MODE_SANDBOX:
            return customer_service_window_open(conn, tenant_id, number.id, contact, now)
        if contact == SANDBOX_SILENT_RECIPIENT:
            return False
        return sandbox_window_open(conn, tenant_id, number.id, contact, now, free_form=free_form)


class ContactWindows:
    """A batch's contacts' customer-service windows, read at once: on a live number the windows
    inbound messages keep, on the sandbox each contact's history (see sandbox_window_open)."""

    def __init__(self, number, now: datetime, expires: dict, histories: dict):
        self.number = number
        self.now = now
        self.expires = expires
        self.histories = histories

    @classmethod
    def read(cls, conn, tenant_id: int, number, contacts: list[str], now: datetime) -> "ContactWindows":
        if number.mode != MODE_SANDBOX:
            return cls(number, now, service_windows_of(conn, tenant_id, number.id, contacts), {})
        return cls(number, now, {}, contact_histories(conn, tenant_id, number.id, contacts))

    def open(self, contact: str, *, free_form: bool) -> bool:
        if self.number.mode != MODE_SANDBOX:
            expires_at = self.expires.get(contact)
            return expires_at is not None and expires_at > self.now
        if contact == SANDBOX_SILENT_RECIPIENT:
            return False
        last_inbound, first_free_form = self.histories.get(contact, (None, None))
        return wrote_within_window(last_inbound, first_free_form, self.now, free_form=free_form)

    def wrote(self, contact: str) -> None:
        """A free-form message to ``contact`` goes out in this batch: on the sandbox it has written now."""
        last_inbound, first_free_form = self.histories.get(contact, (None, None))
        if first_free_form is None:
            self.histories[contact] = (last_inbound, self.now)


def _reached(*conditions):
    return (Message.tenant_id == bindparam("tenant_id", type_=Integer), Message.phone_number_id == bindparam("number_id"),
            Message.business_initiated, Message.status != "failed",
            Message.created_at > bindparam("since"), *conditions)


ALREADY_REACHED = select(exists().where(*_reached(Message.wa_id == bindparam("contact"))))
USERS_REACHED = select(func.count(distinct(Message.wa_id))).where(*_reached())
# When the earliest reached user leaves the moving window: each user counts until its latest send is 24 h old.
_LATEST_PER_USER = select(func.max(Message.created_at).label("latest")).where(*_reached()).group_by(
    Message.wa_id).subquery()
SLOT_FREES_AT = select(func.min(_LATEST_PER_USER.c.latest))


def enforce_messaging_limit(conn, tenant_id: int, number_pk: int, contact: str, limit: int, now: datetime) -> None:
    """Refuse a business-initiated send to a NEW user when the number already reached ``limit`` users in 24 h.

    Runs in the send's transaction before its message row is written, under a
    transaction-scoped lock per number (PostgreSQL advisory lock; SQLite's
    BEGIN IMMEDIATE already serialises writers), so concurrent sends count
    exactly. A user already reached in the window is always allowed. Raises
    MessagingLimitReached (with Retry-After: when the earliest user leaves
    the window); the caller rolls back.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, :number)"),
                     {"space": REACH_LOCK_SPACE, "number": number_pk})
    params = {"tenant_id": tenant_id, "number_id": number_pk, "contact": contact, "since": now - REACH_WINDOW}
    if conn.execute(ALREADY_REACHED, params).scalar():
        return
    reached = conn.execute(USERS_REACHED, params).scalar() or 0
    if reached < limit:
        return
    raise _limit_reached(contact, limit, reached, _wait_for_a_place(conn, params, now))


_ALREADY_REACHED_OF = select(distinct(Message.wa_id)).where(*_reached(
    Message.wa_id.in_(bindparam("contacts", expanding=True))))


def within_messaging_limit(conn, tenant_id: int, number_pk: int, contacts: list[str], limit: int,
                           now: datetime) -> dict[int, MessagingLimitReached]:
    """``enforce_messaging_limit`` for a batch's business-initiated sends (``contacts`` in the batch's
    order): which of them the limit refuses, by position, each with the refusal the send alone would get.

    Under the same lock, in the send's transaction: users already reached pass,
    as does a user an earlier send of the batch reaches; each new user takes a
    place while the number has one, and the first new user past the limit and
    every one after it are refused.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, :number)"),
                     {"space": REACH_LOCK_SPACE, "number": number_pk})
    params = {"tenant_id": tenant_id, "number_id": number_pk, "since": now - REACH_WINDOW}
    reached_before = {row[0] for part in _parts(sorted(set(contacts)))
                      for row in conn.execute(_ALREADY_REACHED_OF, {**params, "contacts": part})}
    reached = conn.execute(USERS_REACHED, params).scalar() or 0
    passing, refused, wait = set(reached_before), {}, None
    for position, contact in enumerate(contacts):
        if contact in passing:
            continue
        if reached < limit:
            reached += 1
            passing.add(contact)
            continue
        wait = wait or _wait_for_a_place(conn, params, now)
        refused[position] = _limit_reached(contact, limit, reached, wait)
    return refused


def _wait_for_a_place(conn, params: dict, now: datetime) -> int:
    """Whole seconds until the earliest reached user leaves the moving window."""
    frees_at = conn.execute(SLOT_FREES_AT, params).scalar()
    return max(1, math.ceil(((frees_at + REACH_WINDOW) - now).total_seconds())) if frees_at else 1


def _limit_reached(contact: str, limit: int, reached: int, wait: int) -> MessagingLimitReached:
    return MessagingLimitReached(details={"contact": contact, "messaging_limit": limit, "users_reached": reached,
                                          "retry_after": wait},
                                 headers={"Retry-After": str(wait)})


def _parts(values: list, size: int = 1000):
    for start in range(0, len(values), size):
        yield values[start:start + size]
