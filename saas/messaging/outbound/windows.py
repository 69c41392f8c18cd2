"""Windows: the 24-hour billable conversation a send finds or opens, and WhatsApp's customer-service window.

Both forms of a send's transaction live here: ``open_window`` (then the
message row and ``Metering.meter_send``) for any database, and
``ONE_STATEMENT_SEND``, the same rows, locks and order in one PostgreSQL
statement, for sends metering never refuses; and a batch's (``open_windows``),
the same locks taken for many contacts in a few set-based statements.

The customer-service window is WhatsApp's, not a billing unit: it is open for
24 hours after the contact's latest message to the number, and only while it
is open may the number send them free-form (non-template) messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, and_, bindparam, case, func, insert, select, text
from sqlalchemy.engine import Connection

from saas.database import insert_for, insert_many
from saas.messaging.models import Conversation, Message, ServiceWindow

WINDOW = timedelta(hours=24)
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Window:
    id: int
    opened: bool
    period_start: datetime


# The hot statements are built once: building a statement costs more than running it.
LATEST_WINDOW = (
    select(Conversation.id, Conversation.seq, Conversation.expires_at, Conversation.period_start)
    .where(Conversation.tenant_id == bindparam("tenant_id"), Conversation.contact == bindparam("contact"),
           Conversation.category == bindparam("category"))
    .order_by(Conversation.seq.desc()).limit(1).with_for_update(key_share=True))
_OPEN_WINDOW: dict[str, object] = {}


def _open_window_statement(conn):
    dialect = conn.dialect.name
    stmt = _OPEN_WINDOW.get(dialect)
    if stmt is None:
        stmt = _OPEN_WINDOW[dialect] = (
            insert_for(conn, Conversation)
            .on_conflict_do_nothing(index_elements=["tenant_id", "contact", "category", "seq"])
            .returning(Conversation.id))
    return stmt


def open_window(conn, tenant_id: int, contact: str, category: str, now: datetime,
                period_start: datetime) -> Window:
    """The open conversation for (tenant, contact, category), opening one if none is.

    Safe under concurrency: the latest window is locked (FOR NO KEY UPDATE, so
    other transactions' foreign-key checks on it do not wait), and a new one is
    inserted under the unique (tenant, contact, category, seq) constraint; of
    two sends racing to open it one inserts and the other joins that window.
    """
    for _ in range(5):
        latest = conn.execute(LATEST_WINDOW, {"tenant_id": tenant_id, "contact": contact,
                                              "category": category}).first()
        if latest is not None and latest.expires_at > now:
            return Window(latest.id, False, latest.period_start)
        new_id = conn.execute(_open_window_statement(conn), {
            "tenant_id": tenant_id, "contact": contact, "category": category,
            "seq": (latest.seq + 1) if latest is not None else 1, "opened_at": now, "expires_at": now + WINDOW,
            "origin": "business_initiated", "period_start": period_start}).scalar()
        if new_id is not None:
            return Window(new_id, True, period_start)
    raise RuntimeError("could not open or join a conversation window")


# -- a batch's windows ---------------------------------------------------------------------------
# The latest window of each (contact, category) of a batch, locked in the order given (PostgreSQL):
# one statement for the lot, the same lock as LATEST_WINDOW takes for one send.
_LATEST_WINDOWS_PG = text("""
SELECT k.contact, k.category, c.id, c.seq, c.expires_at, c.period_start
  FROM unnest(CAST(:contacts AS varchar[]), CAST(:categories AS varchar[])) WITH ORDINALITY AS k(contact, category, n)
 CROSS JOIN LATERAL (
       SELECT id, seq, expires_at, period_start FROM conversations
        WHERE tenant_id = :tenant_id AND contact = k.contact AND category = k.category
        ORDER BY seq DESC LIMIT 1 FOR NO KEY UPDATE) AS c
 ORDER BY k.n""")
# Elsewhere (SQLite, whose BEGIN IMMEDIATE already serialises writers): the contacts' windows, the latest kept.
_WINDOWS_OF = (
    select(Conversation.id, Conversation.contact, Conversation.category, Conversation.seq, Conversation.expires_at,
           Conversation.period_start)
    .where(Conversation.tenant_id == bindparam("tenant_id"),
           Conversation.contact.in_(bindparam("contacts", expanding=True))))
def _latest_windows(conn, tenant_id: int, keys: list[tuple[str, str]]) -> dict:
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_LATEST_WINDOWS_PG, {"tenant_id": tenant_id, "contacts": [k[0] for k in keys],
                                                 "categories": [k[1] for k in keys]})
        return {(row.contact, row.category): row for row in rows}
    wanted, latest = set(keys), {}
    for part in _parts(sorted({contact for contact, _ in keys})):
        for row in conn.execute(_WINDOWS_OF, {"tenant_id": tenant_id, "contacts": part}):
            key = (row.contact, row.category)
            if key in wanted and (key not in latest or row.seq > latest[key].seq):
                latest[key] = row
    return latest


def open_windows(conn, tenant_id: int, keys: list[tuple[str, str]], now: datetime,
                 period_start: datetime) -> dict[tuple[str, str], Window]:
    """``open_window`` for a batch: the open window of each (contact, category), opening those none is.

    In set-based statements: the latest windows locked (in key order, so two
    batches never wait on each other crosswise), then the missing ones
    inserted in one statement under the unique (tenant, contact, category,
    seq) constraint (saas.database.insert_many). A window a concurrent send opened first is
    read again and joined, as ``open_window`` does.
    """
    pending, found = sorted(set(keys)), {}
    if not pending:
        return found
    for _ in range(5):
        latest = _latest_windows(conn, tenant_id, pending)
        new_rows = []
        for key in pending:
            row = latest.get(key)
            if row is not None and row.expires_at > now:
                found[key] = Window(row.id, False, row.period_start)
            else:
                new_rows.append({"tenant_id": tenant_id, "contact": key[0], "category": key[1],
                                 "seq": (row.seq + 1) if row is not None else 1, "opened_at": now,
                                 "expires_at": now + WINDOW, "origin": "business_initiated",
                                 "period_start": period_start})
        for window_id, contact, category in insert_many(conn, Conversation.__table__, new_rows,
                                                        returning=("id", "contact", "category"),
                                                        conflict=("tenant_id", "contact", "category", "seq")):
            found[(contact, category)] = Window(window_id, True, period_start)
        pending = [key for key in pending if key not in found]
        if not pending:
            return found
    raise RuntimeError("could not open or join a conversation window")


INSERT_MESSAGE = insert(Message).returning(Message.id)


def _of_contact(*conditions):
    return and_(Message.tenant_id == bindparam("tenant_id", type_=Integer), Message.phone_number_id == bindparam("number_id"),
                Message.wa_id == bindparam("contact"), *conditions)


# Both served by ix_messages_contact, each an index lookup at one end of a range.
_LAST_INBOUND = select(func.max(Message.created_at)).where(_of_contact(Message.direction == "in"))
_FIRST_FREE_FORM = select(func.min(Message.created_at)).where(
    _of_contact(Message.direction == "out", Message.type != "template"))
CONTACT_HISTORY = select(_LAST_INBOUND.scalar_subquery(), _FIRST_FREE_FORM.scalar_subquery())


def _connection(conn_or_session) -> Connection:
    return conn_or_session if isinstance(conn_or_session, Connection) else conn_or_session.connection()


def customer_service_window_open(conn_or_session, tenant_id: int, phone_number_pk: int, contact: str,
                                 now: datetime) -> bool:
    """Whether ``contact`` wrote to the number (our PhoneNumber id) in the 24 hours before ``now``.

    ``contact`` is the recipient as the send names it: a wa_id (phone number
    digits) or Meta's user_id. The window is the one inbound webhooks keep
    (``service_windows``: refreshed by each message the contact sends, from
    the message's own timestamp, latest first whatever the arrival order).
    Read-only, one primary-key lookup, in the caller's transaction.
    """
    expires_at = _connection(conn_or_session).execute(OPEN_SERVICE_WINDOW, {
        "tenant_id": tenant_id, "phone_number_id": phone_number_pk, "contact": contact}).scalar()
    return expires_at is not None and expires_at > now


def sandbox_window_open(conn_or_session, tenant_id: int, phone_number_pk: int, contact: str, now: datetime,
                        *, free_form: bool) -> bool:
    """The customer-service window on a sandbox number, whose recipients write first.

    A sandbox recipient is taken to have written to the number the moment it
    is first sent a free-form message (so a newcomer's first "hello" goes
    out); from then on its window opens and closes exactly as on a live
    number, and real inbound messages count as they always do. A template to
    a recipient that never "wrote" is business-initiated, as on a live number.
    """
    last_inbound, first_free_form = _connection(conn_or_session).execute(CONTACT_HISTORY, {
        "tenant_id": tenant_id, "number_id": phone_number_pk, "contact": contact}).one()
    return wrote_within_window(last_inbound, first_free_form, now, free_form=free_form)


def wrote_within_window(last_inbound: datetime | None, first_free_form: datetime | None, now: datetime, *,
                        free_form: bool) -> bool:
    """A sandbox contact's window from its history (see sandbox_window_open)."""
    if first_free_form is None and free_form:
        first_free_form = now
    wrote = max((t for t in (last_inbound, first_free_form) if t is not None), default=None)
    return wrote is not None and wrote > now - CUSTOMER_SERVICE_WINDOW


# A batch's contacts at once (ix_messages_contact and the service windows' key serve both).
_HISTORIES = (
    select(Message.wa_id, func.max(Message.created_at).filter(Message.direction == "in"),
           func.min(Message.created_at).filter(Message.direction == "out", Message.type != "template"))
    .where(Message.tenant_id == bindparam("tenant_id", type_=Integer),
           Message.phone_number_id == bindparam("number_id"), Message.wa_id.in_(bindparam("contacts", expanding=True)))
    .group_by(Message.wa_id))


def contact_histories(conn, tenant_id: int, phone_number_pk: int, contacts: list[str]) -> dict:
    """Each contact's (latest inbound, first free-form outbound) on the number; contacts with no
    message are left out. Read-only, one statement per thousand contacts."""
    found = {}
    for part in _parts(contacts):
        for contact, last_inbound, first_free_form in conn.execute(_HISTORIES, {
                "tenant_id": tenant_id, "number_id": phone_number_pk, "contacts": part}):
            found[contact] = (last_inbound, first_free_form)
    return found

# A send's whole transaction as one PostgreSQL statement, for sends metering never refuses:
# the same rows, locks and order as open_window + INSERT_MESSAGE + Metering.meter_send, in one
# round trip. No row comes back when a concurrent send opened the window first: run it again.
ONE_STATEMENT_SEND = """
WITH latest AS (
    SELECT id, seq, expires_at FROM conversations
    WHERE tenant_id = :tenant_id AND contact = :contact AND category = :category
    ORDER BY seq DESC LIMIT 1 FOR NO KEY UPDATE
), opened AS (
    INSERT INTO conversations (tenant_id, contact, category, seq, opened_at, expires_at, origin, period_start)
    SELECT :tenant_id, :contact, :category, COALESCE((SELECT seq FROM latest), 0) + 1, :now, :expires_at,
           'business_initiated', :period_start
    WHERE NOT EXISTS (SELECT 1 FROM latest WHERE expires_at > :now)
    ON CONFLICT (tenant_id, contact, category, seq) DO NOTHING
    RETURNING id
), win AS (
    SELECT id, TRUE AS opened FROM opened
    UNION ALL
    SELECT id, FALSE FROM latest WHERE expires_at > :now
), message AS (
    INSERT INTO messages (tenant_id, phone_number_id, direction, wa_id, type, body_summary, status,
                          wa_message_id, response_status, response_body, conversation_id, opened_conversation,
                          period_start, idempotency_key, request_hash, business_initiated, category,
                          callback_data, created_at, updated_at)
    SELECT :tenant_id, :phone_number_id, 'out', :contact, :type, :body_summary, :status, :wa_message_id,
           :response_status, CAST(:response_body AS json), win.id, win.opened, :period_start, :idempotency_key,
           :request_hash, :business_initiated, :category, :callback_data, :now, :now
    FROM win
    RETURNING id, conversation_id, opened_conversation
), metered AS (
    SELECT CAST(:tenant_id AS integer) AS tenant_id, CAST(:period_start AS timestamp) AS period_start,
           opened_conversation AS opened, conversation_id, id AS message_id
    FROM message
)"""

# Appended to ONE_STATEMENT_SEND for a send written settled (the sandbox's, answered first): its send.settled
# event in the outbox in the same statement, its payload made by saas.messaging.domain_events.send_settled with
# the message's id put in.
SETTLED_EVENT = """, settled_event AS (
    INSERT INTO domain_events (tenant_id, type, stream, payload, created_at, attempts)
    SELECT :tenant_id, :event_type, :event_stream,
           CAST(jsonb_set(CAST(:event_payload AS jsonb), '{message_id}', to_jsonb(message.id)) AS json), :now, 0
    FROM message
)"""


# -- the customer-service window ---------------------------------------------------------------
# Opened (or refreshed) for 24 hours by every message a contact sends to one of the
# tenant's numbers. An inbound message bills nothing: the window is not a Conversation.
SERVICE_WINDOW = timedelta(hours=24)
_REFRESH_WINDOW: dict[str, object] = {}


def _refresh_statement(conn):
    dialect = conn.dialect.name
    stmt = _REFRESH_WINDOW.get(dialect)
    if stmt is None:
        table = ServiceWindow.__table__
        insert_ = insert_for(conn, ServiceWindow)
        new = insert_.excluded
        later = new.last_inbound_at > table.c.last_inbound_at
        stmt = _REFRESH_WINDOW[dialect] = insert_.on_conflict_do_update(
            index_elements=["tenant_id", "phone_number_id", "contact"],
            set_={
                # A window that had closed opens anew; an open one keeps the moment it opened.
                "opened_at": case((table.c.expires_at <= new.last_inbound_at, new.opened_at),
                                  else_=table.c.opened_at),
                # Messages may be applied out of order: the latest one decides.
                "last_inbound_at": case((later, new.last_inbound_at), else_=table.c.last_inbound_at),
                "expires_at": case((later, new.expires_at), else_=table.c.expires_at),
            })
    return stmt


def refresh_service_windows(conn, inbound: list[tuple[int, int, str, datetime]]) -> None:
    """Open or refresh the customer-service window for each (tenant id, number pk, contact, sent at).

    In the caller's transaction. Idempotent and order-proof: the window runs
    24 hours from the latest message, whatever order messages are applied in.
    """
    latest: dict[tuple[int, int, str], datetime] = {}
    for tenant_id, number_pk, contact, at in inbound:
        key = (tenant_id, number_pk, contact)
        if key not in latest or at > latest[key]:
            latest[key] = at
    # One statement per window, in key order: concurrent refreshes lock rows in the same order.
    stmt = _refresh_statement(conn)
    for (tenant_id, number_pk, contact), at in sorted(latest.items()):
        conn.execute(stmt, {"tenant_id": tenant_id, "phone_number_id": number_pk, "contact": contact,
                            "opened_at": at, "last_inbound_at": at, "expires_at": at + SERVICE_WINDOW})


OPEN_SERVICE_WINDOW = (
    select(ServiceWindow.expires_at)
    .where(ServiceWindow.tenant_id == bindparam("tenant_id"),
           ServiceWindow.phone_number_id == bindparam("phone_number_id"),
           ServiceWindow.contact == bindparam("contact")))


_SERVICE_WINDOWS = (
    select(ServiceWindow.contact, ServiceWindow.expires_at)
    .where(ServiceWindow.tenant_id == bindparam("tenant_id"),
           ServiceWindow.phone_number_id == bindparam("phone_number_id"),
           ServiceWindow.contact.in_(bindparam("contacts", expanding=True))))


def service_windows_of(conn, tenant_id: int, phone_number_pk: int, contacts: list[str]) -> dict:
    """When each contact's customer-service window on the number ends; contacts with none are left
    out. Read-only, one statement per thousand contacts."""
    found = {}
    for part in _parts(contacts):
        found.update(conn.execute(_SERVICE_WINDOWS, {
            "tenant_id": tenant_id, "phone_number_id": phone_number_pk, "contacts": part}).all())
    return found


def _parts(values: list, size: int = 1000):
    for start in range(0, len(values), size):
        yield values[start:start + size]
