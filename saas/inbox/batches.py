"""Settled sends, WhatsApp's statuses and an automation's sent replies onto threads, a batch at a time.

What ``threads.record_message_row`` and ``threads.apply_status`` do for one event, done for a batch in a few
set-based statements whatever its size: the sends' rows read at once; their threads found (locked, in id
order) or made with their contacts; their entries inserted; each thread touched once. Statuses move their
entries' ticks forward in one statement, and write the entries of sends that have none yet (a batch's
sends publish no settling) as settled sends' are. What the batch finds written already (the inbox's own
reply, whose entry knows its agent; an event handed over again) goes the one-event way, which knows how to
merge it. Same rows, same idempotence. A batch of an automation's replies (``record_replies``) goes the same
way, with the lines saying why those not sent were not.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select, tuple_, update

from saas.contacts.inbound import contact_ids
from saas.database import among, built_once, insert_many
from saas.inbox import rendering, threads
from saas.inbox.models import CUSTOMER, MESSAGE, OPEN, RESOLVED, Entry, Thread
from saas.messaging.inbound.objects import first_error, moment, text
from saas.messaging.models import STATUS_RANK, Message
from saas.timeutil import utcnow

_SENT = (Message.id, Message.tenant_id, Message.phone_number_id, Message.wa_id, Message.type, Message.body_summary,
         Message.wa_message_id, Message.idempotency_key, Message.created_at, Message.error_code,
         Message.error_title)
# An outbound entry's columns (a rule-run line has some of them, the others NULL).
_OUTBOUND = ("tenant_id", "thread_id", "kind", "direction", "author", "author_user_id", "message_id", "wa_message_id",
             "type", "content", "text", "status", "error_code", "error_title", "at", "created_at")


# A batch's statements, built once with its keys bound as ``keys`` (an expanding IN of (tenant, ...) pairs).
def _keyed(name: str, build):
    return lambda conn: built_once(conn, f"inbox.batches.{name}", lambda conn: build(bindparam("keys", expanding=True)))


_SENDS_BY_ID = _keyed("sends.id", lambda keys: select(*_SENT).where(
    tuple_(Message.tenant_id, Message.id).in_(keys), Message.direction == "out"))
_SENDS_BY_WAMID = _keyed("sends.wamid", lambda keys: select(*_SENT).where(
    tuple_(Message.tenant_id, Message.wa_message_id).in_(keys), Message.direction == "out"))
_ENTRIES_OF_SENDS = _keyed("entries.message", lambda keys: select(Entry.tenant_id, Entry.message_id).where(
    tuple_(Entry.tenant_id, Entry.message_id).in_(keys)))
_ENTRIES_BY_WAMID = _keyed("entries.wamid", lambda keys: select(
    Entry.id, Entry.tenant_id, Entry.wa_message_id, Entry.thread_id, Entry.status).where(
    tuple_(Entry.tenant_id, Entry.wa_message_id).in_(keys)))

_THREAD = (Thread.id, Thread.tenant_id, Thread.phone_number_id, Thread.wa_id, Thread.status, Thread.assignee_id,
           Thread.last_message_at, Thread.last_preview, Thread.waiting_since, Thread.name, Thread.unread,
           Thread.window_expires_at, Thread.contact_id)


def record_settled(conn, settled, now=None) -> list[threads.Touched]:
    """``send.settled`` events of tenants with the inbox: each send's entry on its customer's thread."""
    now = now or utcnow()
    by_message: dict[tuple[int, int], list] = {}
    for event in settled:
        by_message.setdefault((event.tenant_id, event.payload["message_id"]), []).append(event)
    rows = conn.execute(_SENDS_BY_ID(conn), {"keys": sorted(by_message)}).all()
    written = set(conn.execute(_ENTRIES_OF_SENDS(conn), {"keys": sorted(by_message)}).tuples())
    touched, new = [], []
    for row in rows:
        key = (row.tenant_id, row.id)
        if key in written or len(by_message[key]) > 1:
            touched += [t for t in (_one_settled(conn, event, now) for event in by_message[key]) if t]
        else:
            payload = by_message[key][0].payload
            if payload.get("outcome") == "failed":
                new.append((row, "failed", payload.get("error_code"), payload.get("error_title")))
            else:
                new.append((row, "accepted", None, None))
    if new:
        touched += _write_new(conn, new, now)
    return touched


def _one_settled(conn, event, now):
    failed = event.payload.get("outcome") == "failed"
    return threads.record_message_row(conn, event.tenant_id, event.payload["message_id"],
                                      status="failed" if failed else "accepted",
                                      error_code=event.payload.get("error_code") if failed else None,
                                      error_title=event.payload.get("error_title") if failed else None, now=now)


def _write_new(conn, new, now) -> list[threads.Touched]:
    """Entries for sends no entry holds yet, each (Message row, status, error code, error title), on their
    threads (made resolved where there are none)."""
    found = _threads(conn, {(row.tenant_id, row.phone_number_id, row.wa_id) for row, *_ in new}, now)
    entries, lines = [], {}
    for row, status, code, title in new:
        thread = found[(row.tenant_id, row.phone_number_id, row.wa_id)]
        author = threads.author_of(row.idempotency_key)
        line = row.body_summary or row.type
        entries.append({
            "tenant_id": row.tenant_id, "thread_id": thread.id, "kind": MESSAGE, "direction": "out", "author": author,
            "author_user_id": None, "message_id": row.id, "wa_message_id": row.wa_message_id, "type": row.type,
            "content": {"summary": row.body_summary}, "text": line[:4096], "status": status,
            "error_code": code if code is not None else row.error_code, "error_title": title or row.error_title,
            "at": row.created_at, "created_at": now})
        lines.setdefault(thread.id, []).append((row.created_at, line, author in threads.ANSWERING and status != "failed"))
    latest = {thread_id: (*max(items, key=lambda item: item[0])[:2], any(item[2] for item in items))
              for thread_id, items in lines.items()}
    insert_many(conn, Entry.__table__, entries, conflict=("tenant_id", "message_id"))
    _touch_all(conn, {thread.id: thread for thread in found.values()}, latest, now)
    return [threads.Touched(t.tenant_id, t.id, status=t.status, assignee_id=t.assignee_id)
            for t in found.values() if t.id in latest]


def record_replies(conn, tenant_id: int, number_pk: int, items: list[tuple], now) -> None:
    """Messages to customers of one tenant's number and lines about them, as ``threads.record_outbound`` and
    ``threads.log_rule_run`` write each, in their order, a statement per table whatever their count.

    ``items``: (the customer's wa_id, a ``threads.outbound_row`` without its thread) or (None, a
    ``threads.rule_run_row``). An entry a status wrote first goes the one-event way, which merges; the others'
    threads are found (locked) or made resolved, the new entries inserted (idempotent on the message id), and
    each thread touched once: its newest preview, no longer waiting once answered (``threads.ANSWERING``)."""
    message_ids = sorted({entry["message_id"] for wa_id, entry in items if wa_id is not None})
    written = set(conn.execute(select(Entry.message_id).where(
        Entry.tenant_id == tenant_id, among(conn, Entry.message_id, message_ids))).scalars()) if message_ids else set()
    new = []
    for wa_id, entry in items:
        if wa_id is not None and entry["message_id"] in written:
            threads.record_outbound(
                conn, tenant_id, number_pk=number_pk, wa_id=wa_id, message_id=entry["message_id"],
                wa_message_id=entry["wa_message_id"], author=entry["author"], kind=entry["type"],
                content=entry["content"], line=entry["text"], at=entry["at"], status=entry["status"],
                error_code=entry["error_code"], error_title=entry["error_title"], now=now)
        else:
            new.append((wa_id, entry))
    keys = {(tenant_id, number_pk, wa_id) for wa_id, _ in new if wa_id is not None}
    found = _threads(conn, keys, now) if keys else {}
    rows = [dict(dict.fromkeys(_OUTBOUND), **entry) for _, entry in new]
    for (wa_id, _), row in zip(new, rows):
        if wa_id is not None:
            row["thread_id"] = found[(tenant_id, number_pk, wa_id)].id
    inserted = {message_id for (message_id,) in insert_many(
        conn, Entry.__table__, rows, returning=("message_id",), conflict=("tenant_id", "message_id"))}
    latest: dict[int, tuple] = {}
    for row in rows:
        if row["direction"] == "out" and row["message_id"] in inserted:
            at, line, answered = latest.get(row["thread_id"], (None, "", False))
            if at is None or row["at"] >= at:  # one by one, a later one as new as the last moves the preview
                at, line = row["at"], row["text"]
            latest[row["thread_id"]] = (at, line, answered or (row["author"] in threads.ANSWERING
                                                                and row["status"] != "failed"))
    _touch_all(conn, {thread.id: thread for thread in found.values()}, latest, now)
    threads.touch_threads(conn, {row["thread_id"] for row in rows if row["direction"] is None} - set(latest), now)


def _threads(conn, keys: set[tuple[int, int, str]], now, *, status: str = RESOLVED,
             names: dict | None = None) -> dict:
    """The threads of (tenant, number, customer) ``keys``, locked in id order; those missing made first
    (``status``: resolved when the business wrote first; ``names``: a customer's profile name by key), each
    with its contact."""
    found = _locked(conn, keys)
    missing = sorted(keys - set(found))
    if missing:
        names = names or {}
        contacts = contact_ids(conn, sorted({(tenant_id, wa_id) for tenant_id, _, wa_id in missing}))
        insert_many(conn, Thread.__table__, [
            {"tenant_id": tenant_id, "phone_number_id": number_pk, "wa_id": wa_id,
             "contact_id": contacts.get((tenant_id, wa_id)), "name": names.get((tenant_id, number_pk, wa_id)),
             "status": status, "unread": 0, "last_preview": "", "created_at": now, "updated_at": now}
            for tenant_id, number_pk, wa_id in missing],
            conflict=("tenant_id", "phone_number_id", "wa_id"))
        found = _locked(conn, keys)
    return found


def customer_threads(conn, names: dict[tuple[int, int, str], str | None], now=None) -> dict:
    """The threads of (tenant, number, customer) keys, locked in id order, those missing made open with their
    contacts as a customer's first message makes them (``names``: each key's profile name, or None)."""
    return _threads(conn, set(names), now or utcnow(), status=OPEN,
                    names={key: name[:200] for key, name in names.items() if name})


_LOCKED = _keyed("threads.locked", lambda keys: select(*_THREAD).where(
    tuple_(Thread.tenant_id, Thread.phone_number_id, Thread.wa_id).in_(keys)).order_by(Thread.id).with_for_update())


def _locked(conn, keys) -> dict:
    rows = conn.execute(_LOCKED(conn), {"keys": sorted(keys)}).all()
    return {(row.tenant_id, row.phone_number_id, row.wa_id): row for row in rows}


_TOUCH = (update(Thread.__table__).where(Thread.__table__.c.id == bindparam("b_id"))
          .values(updated_at=bindparam("b_now"), last_message_at=bindparam("b_at"),
                  last_preview=bindparam("b_preview"), waiting_since=bindparam("b_waiting")))


def _touch_all(conn, by_id: dict, latest: dict, now) -> None:
    """Each thread once: its newest message and preview (never an older one over a newer), and no longer
    waiting once answered (as ``threads.record_outbound`` does for one)."""
    params = []
    for thread_id, (at, line, answered) in sorted(latest.items()):
        thread = by_id[thread_id]
        newer = thread.last_message_at is None or at >= thread.last_message_at
        params.append({"b_id": thread_id, "b_now": now,
                       "b_at": at if newer else thread.last_message_at,
                       "b_preview": line[:300] if newer else thread.last_preview,
                       "b_waiting": None if answered else thread.waiting_since})
    if params:
        conn.execute(_TOUCH, params)


def apply_statuses(conn, statuses, now=None) -> list[threads.Touched]:
    """``message.status_changed`` events of tenants with the inbox: each entry's tick moved forward to the
    furthest status the batch holds for it (``failed`` keeps Meta's refusal); one statement for the entries,
    one for their threads."""
    now = now or utcnow()
    furthest: dict[tuple[int, str], tuple] = {}
    for event in statuses:
        status = event.payload.get("status")
        if status not in STATUS_RANK or not event.payload.get("wa_message_id"):
            continue
        key = (event.tenant_id, event.payload["wa_message_id"])
        if key not in furthest or STATUS_RANK[status] > STATUS_RANK[furthest[key][0]]:
            error = first_error(event.payload.get("object") or {}) if status == "failed" else {}
            furthest[key] = (status, error.get("code") if isinstance(error.get("code"), int) else None,
                             text(error.get("title") or error.get("message"), 300))
    if not furthest:
        return []
    entries = conn.execute(_ENTRIES_BY_WAMID(conn), {"keys": sorted(furthest)}).all()
    touched, params, moved = [], [], {}
    for entry in entries:
        status, code, title = furthest.pop((entry.tenant_id, entry.wa_message_id))
        if STATUS_RANK[status] > STATUS_RANK.get(entry.status or "pending", 0):
            params.append({"b_id": entry.id, "b_status": status, "b_code": code, "b_title": title})
            moved[entry.thread_id] = entry.tenant_id
    if furthest:  # sends of ours with no entry yet (a batch's, which publishes no settling): written now
        rows = conn.execute(_SENDS_BY_WAMID(conn), {"keys": sorted(furthest)}).all()
        if rows:
            touched += _write_new(conn, [(row, *furthest[(row.tenant_id, row.wa_message_id)]) for row in rows], now)
    if params:
        table = Entry.__table__
        conn.execute(update(table).where(table.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), error_code=bindparam("b_code"), error_title=bindparam("b_title")), params)
        conn.execute(update(Thread).where(among(conn, Thread.id, sorted(moved))).values(updated_at=now))
    return touched + [threads.Touched(tenant_id, thread_id) for thread_id, tenant_id in sorted(moved.items())]


_INBOUND = (update(Thread.__table__).where(Thread.__table__.c.id == bindparam("b_id"))
            .values(updated_at=bindparam("b_now"), unread=bindparam("b_unread"), status=OPEN,
                    window_expires_at=bindparam("b_window"), waiting_since=bindparam("b_waiting"),
                    name=bindparam("b_name"), last_message_at=bindparam("b_at"), last_preview=bindparam("b_preview")))


def _inbound_row(event, now) -> tuple[tuple, str | None, dict]:
    """An inbound message event as (its thread's key, the customer's profile name, its entry's values)."""
    payload = event.payload
    message = payload["object"] or {}
    contact = payload.get("contact")
    profile = contact.get("profile") if isinstance(contact, dict) and isinstance(contact.get("profile"), dict) else {}
    name = profile.get("name") if isinstance(profile.get("name"), str) and profile.get("name") else None
    kind, content, line = rendering.inbound(message)
    entry = {"tenant_id": event.tenant_id, "thread_id": None, "kind": MESSAGE, "direction": "in",
             "author": CUSTOMER, "wa_message_id": payload["wa_message_id"][:128], "type": kind, "content": content,
             "text": line, "at": moment(message.get("timestamp"), now), "created_at": now}
    return (event.tenant_id, payload["number"]["id"], payload["from"]), name, entry


def record_inbound(conn, received, now=None) -> list[threads.Touched]:
    """``message.received`` events of tenants with the inbox, as ``threads.record_inbound`` writes each, in
    one statement per table: the threads found (locked) or made open with their contacts, the entries
    inserted (one already written is left as it is), each thread touched once for its new messages (unread,
    window, waiting since, newest preview, the last profile name given). One Touched per thread changed, in
    the order of their first new message."""
    now = now or utcnow()
    rows, seen = [], set()
    for event in received:
        key, name, entry = _inbound_row(event, now)
        if (entry["tenant_id"], entry["wa_message_id"]) not in seen:
            seen.add((entry["tenant_id"], entry["wa_message_id"]))
            rows.append((key, name, entry))
    names = {key: name[:200] for key, name, _ in rows if name}
    found = _threads(conn, {key for key, _, _ in rows}, now, status=OPEN, names=names)
    for key, _, entry in rows:
        entry["thread_id"] = found[key].id
    written = {tuple(row) for row in insert_many(conn, Entry.__table__, [entry for _, _, entry in rows],
                                                 returning=("tenant_id", "wa_message_id"),
                                                 conflict=("tenant_id", "wa_message_id"))}
    changed: dict[int, dict] = {}
    for key, name, entry in rows:
        if (entry["tenant_id"], entry["wa_message_id"]) in written:
            _count_inbound(changed, found[key], name, entry)
    if changed:
        conn.execute(_INBOUND, [dict(values, b_now=now) for _, values in sorted(changed.items())])
    by_id = {thread.id: thread for thread in found.values()}
    return [threads.Touched(by_id[thread_id].tenant_id, thread_id, new_inbound=True, status=OPEN,
                            assignee_id=by_id[thread_id].assignee_id) for thread_id in changed]


def _count_inbound(changed: dict, thread, name: str | None, entry: dict) -> None:
    """One new inbound entry onto the thread's values, as ``threads.record_inbound`` moves them."""
    values = changed.get(thread.id)
    if values is None:
        values = changed[thread.id] = {
            "b_id": thread.id, "b_unread": thread.unread, "b_window": thread.window_expires_at,
            "b_waiting": thread.waiting_since, "b_name": thread.name, "b_at": thread.last_message_at,
            "b_preview": thread.last_preview}
    at = entry["at"]
    values["b_unread"] += 1
    values["b_window"] = max(at + threads.WINDOW, values["b_window"] or at + threads.WINDOW)
    values["b_waiting"] = min(at, values["b_waiting"] or at)
    if name:
        values["b_name"] = name[:200]
    if values["b_at"] is None or at >= values["b_at"]:
        values["b_at"], values["b_preview"] = at, entry["text"][:300]
