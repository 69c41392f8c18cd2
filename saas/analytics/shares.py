"""Each outbound message's share of the daily roll-ups, read from its row (and its cost's), in one SELECT
that both the consumer (for a batch's messages) and the rebuild (for every message since a day) run, so the
two can never count differently.

A message's share: its day (UTC date of its creation), number, category, market and currency; ``sent`` once
WhatsApp accepted it (it has WhatsApp's id), ``delivered`` once a delivered or read status came (read implies
delivered), ``read``, ``failed`` while its status is failed (with WhatsApp's code), ``conversations`` when
its send opened one, ``confirmed`` once Meta's pricing confirmed its cost; the estimated, confirmed and best
known (confirmed, else estimated) cost. Statuses never move a message backwards (saas.messaging.inbound.
statuses), so a share only grows, except a failure that a later delivery shows was stale news.
A send not settled yet (``pending``) has no share.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Date, and_, case, func, or_, select, text

from saas.analytics.models import AMOUNTS, COUNTS, KEY, NO_CODE, CountedMessage, DailyFailures, DailyFigures
from saas.costs.models import MessageCost
from saas.database import among_bound, built_once, insert_many
from saas.messaging.models import Message

# The first key of the two-key advisory lock that serialises the roll-ups' consumers per tenant.
LOCK_SPACE = 7_000_018
# A share's columns after (tenant_id, message_id), in the order CountedMessage is written.
SHARE = (*KEY, *COUNTS, "error_code", *AMOUNTS)


def _flag(condition):
    return case((condition, 1), else_=0)


def share_select(*extra):
    """SELECT tenant_id, message_id, then SHARE's columns (then ``extra``) of outbound settled messages."""
    cost = MessageCost
    failed = Message.status == "failed"
    columns = [
        Message.tenant_id.label("tenant_id"), Message.id.label("message_id"),
        func.date(Message.created_at, type_=Date).label("day"),
        Message.phone_number_id.label("phone_number_id"),
        func.coalesce(Message.category, "").label("category"),
        func.coalesce(cost.market, "").label("market"),
        func.coalesce(cost.currency, "").label("currency"),
        _flag(Message.wa_message_id.is_not(None)).label("sent"),
        _flag(or_(Message.delivered_at.is_not(None), Message.read_at.is_not(None))).label("delivered"),
        _flag(Message.read_at.is_not(None)).label("read"),
        _flag(failed).label("failed"),
        _flag(Message.opened_conversation.is_(True)).label("conversations"),
        _flag(cost.confirmed_at.is_not(None)).label("confirmed"),
        case((failed, func.coalesce(Message.error_code, NO_CODE)), else_=NO_CODE).label("error_code"),
        func.coalesce(cost.estimated_micros, 0).label("estimated_micros"),
        func.coalesce(cost.confirmed_micros, 0).label("confirmed_micros"),
        func.coalesce(cost.confirmed_micros, cost.estimated_micros, 0).label("cost_micros"),
    ]
    return (select(*columns, *extra)
            .select_from(Message)
            .outerjoin(cost, and_(cost.tenant_id == Message.tenant_id, cost.message_id == Message.id))
            .where(Message.direction == "out", Message.status != "pending"))


# The roll-ups are upserts, one set-based statement each (saas.database.insert_many): built once, where a
# dialect's INSERT ... ON CONFLICT would be compiled again at every batch (SQLAlchemy caches none).
def _add_figures(conn, rows: list[dict]) -> None:
    insert_many(conn, DailyFigures.__table__, rows, conflict=("tenant_id", *KEY), add=(*COUNTS, *AMOUNTS))


def _add_failures(conn, rows: list[dict]) -> None:
    insert_many(conn, DailyFailures.__table__, rows, conflict=("tenant_id", "day", "phone_number_id", "error_code"),
                add=("failed",))


def _keep(conn, rows: list[dict]) -> None:
    insert_many(conn, CountedMessage.__table__, rows, conflict=("tenant_id", "message_id"), replace=SHARE)


def _lock(conn, tenant_ids) -> None:
    """Wait for a rebuild in progress (it holds the counted shares exclusively), then take the tenants' locks
    in one order (two batches naming one message add its share once). SQLite has one writer already."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text("LOCK TABLE analytics_counted IN ROW EXCLUSIVE MODE"))
    for tenant_id in sorted(tenant_ids):
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, :tenant)"), {"space": LOCK_SPACE, "tenant": tenant_id})


def _named(conn, ids: bool, wamids: bool):
    """``share_select`` (with each message's WhatsApp id) of the messages named by the ids bound as ``ids``
    and/or the WhatsApp ids bound as ``wamids``; built once per dialect."""
    def build(conn):
        named = [among_bound(conn, column, name) for column, name, given in (
            (Message.id, "ids", ids), (Message.wa_message_id, "wamids", wamids)) if given]
        return share_select(Message.wa_message_id).where(or_(*named))
    return built_once(conn, f"analytics.shares.{ids:d}{wamids:d}", build)


def _read(conn, by_id: set, by_wamid: set) -> dict:
    """The shares now of the messages named: (tenant, message id) -> row."""
    ids = sorted({message_id for _, message_id in by_id})
    wamids = sorted({wamid for _, wamid in by_wamid})
    params = {name: values for name, values in (("ids", ids), ("wamids", wamids)) if values}
    found = {}
    for row in conn.execute(_named(conn, bool(ids), bool(wamids)), params):
        if (row.tenant_id, row.message_id) in by_id or (row.tenant_id, row.wa_message_id) in by_wamid:
            found[(row.tenant_id, row.message_id)] = row
    return found


def _counted(conn, pairs) -> dict:
    if not pairs:
        return {}
    statement = built_once(conn, "analytics.counted", lambda conn: select(CountedMessage.__table__).where(
        among_bound(conn, CountedMessage.tenant_id, "tenants"), among_bound(conn, CountedMessage.message_id, "ids")))
    rows = conn.execute(statement, {"tenants": sorted({t for t, _ in pairs}), "ids": sorted(m for _, m in pairs)})
    return {(row.tenant_id, row.message_id): {name: getattr(row, name) for name in SHARE} for row in rows}


def _apply(tenant_id: int, share: dict, sign: int, figures: dict, failures: dict) -> None:
    key = (tenant_id, *(share[name] for name in KEY))
    totals = figures[key]
    for index, name in enumerate((*COUNTS, *AMOUNTS)):
        totals[index] += sign * share[name]
    if share["failed"]:
        failures[(tenant_id, share["day"], share["phone_number_id"], share["error_code"])] += sign


def add_shares(conn, by_id: set, by_wamid: set) -> int:
    """Bring the roll-ups up to date with the messages named by (tenant, id) or (tenant, WhatsApp id), in
    the caller's transaction: each message's share now less the share it last added, in one upsert per
    table. Idempotent: a message whose share did not change adds nothing. How many messages changed."""
    tenants = {tenant_id for tenant_id, _ in by_id | by_wamid}
    if not tenants:
        return 0
    _lock(conn, tenants)
    now = {pair: {name: getattr(row, name) for name in SHARE} for pair, row in _read(conn, by_id, by_wamid).items()}
    before = _counted(conn, now)
    figures: dict = defaultdict(lambda: [0] * (len(COUNTS) + len(AMOUNTS)))
    failures: dict = defaultdict(int)
    kept = []
    for pair in sorted(now):
        share, old = now[pair], before.get(pair)
        if share == old:
            continue
        if old is not None:
            _apply(pair[0], old, -1, figures, failures)
        _apply(pair[0], share, 1, figures, failures)
        kept.append({"tenant_id": pair[0], "message_id": pair[1], **share})
    if not kept:
        return 0
    columns = (*COUNTS, *AMOUNTS)
    added = [{"tenant_id": key[0], **dict(zip(KEY, key[1:])), **dict(zip(columns, totals))}
             for key, totals in sorted(figures.items()) if any(totals)]
    if added:
        _add_figures(conn, added)
    changed = [{"tenant_id": key[0], "day": key[1], "phone_number_id": key[2], "error_code": key[3], "failed": n}
               for key, n in sorted(failures.items()) if n]
    if changed:
        _add_failures(conn, changed)
    _keep(conn, kept)
    return len(kept)
