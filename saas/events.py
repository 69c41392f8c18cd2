"""Domain events: written in the transaction that causes them, delivered to consumers after it commits.

A change others react to (saas.messaging.domain_events names messaging's: a
message received, a status changed, a template changed, a number's quality
changed, a send settled) publishes events: ``publish(conn, [Event(...)])``
writes them to the outbox (saas.outbox) with one batched INSERT in the
caller's transaction, so a change that rolls back leaves no event and one
that commits always has its events. ``commit(session)`` commits, then
delivers what was published, in this process, at once: in a request (with
EVENTS_IN_BACKGROUND, the default) the commit only hands its streams to the
process's deliverer (``Deliverer``), a thread that delivers every commit's
events that arrived meanwhile in one transaction, so the request answers once
its own change is committed and consumers' work is done in sets beside it;
so do the commits of work that asks for it (``handed_to_deliverer``: the
sending of automated replies, one commit per reply); elsewhere (jobs, the
CLI, a thread of the send service) in the committing thread before
``commit`` returns. The sweep (``sweep``: every process's
housekeeping, and ``flask events sweep``) delivers what a crash between the
two left, and gives a failed consumer its events again.

A consumer is ``handle(conn, events)``, registered with
``subscribe(event_types, handle)``, usually in a ``consumers`` module of its
area: ``discover()`` imports every such module when the app is built, so a
new consumer is a new module and no existing one is edited. It is called in
the delivering transaction: what it writes on ``conn`` commits as its events
leave the outbox (once); anything else it does happens at least once, and an
event may come again, with the same ``id``, after a failure. A consumer gets
a stream's events in order (a conversation: a tenant and a customer; a
template; a number), whichever process delivers them.

An event no consumer wants is not written: nothing would read it (a consumer may serve only some
tenants, those whose plan has its feature: see ``subscribe``).
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app, has_app_context, has_request_context

from saas import outbox
from saas.outbox import Event  # noqa: F401  (what publishers build and consumers get)
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

# The sweep leaves younger events to the process that published them (it delivers them right after its commit).
SWEEP_AFTER = timedelta(seconds=10)
# The most events one delivering transaction takes (a batch of ten notifications holds about as many).
CLAIM_LIMIT = 2000


@dataclass(frozen=True)
class Consumer:
    name: str
    types: frozenset
    handle: Callable
    # serves(conn, tenant_ids) -> the tenants among them whose events it wants; None: every tenant's.
    serves: Callable | None = None


_consumers: dict[str, Consumer] = {}
# The streams this context published in since it last delivered (one set per thread, greenlet or task).
_published: ContextVar[set | None] = ContextVar("domain_event_streams", default=None)
# Whether this context's commits hand their events to the deliverer though it is no request.
_handed_over: ContextVar[bool] = ContextVar("domain_events_handed_over", default=False)


def subscribe(event_types, handle: Callable, *, name: str | None = None, serves: Callable | None = None) -> Consumer:
    """Register ``handle(conn, events)`` for ``event_types`` (a type, or several).

    ``serves(conn, tenant_ids)``, when given, says which of those tenants the
    consumer wants events of (a feature their plan has, a rule they set): it
    is asked in the publishing transaction, and an event no consumer wants is
    not written. ``name`` (by default the function's import path) must stay
    the same from one release to the next: the outbox names the consumers
    that still owe an event by it. Subscribing a name again replaces it.
    """
    types = frozenset((event_types,) if isinstance(event_types, str) else event_types)
    name = name or f"{handle.__module__}.{handle.__qualname__}"
    if "," in name or not 0 < len(name) <= 100:
        raise ValueError(f"a consumer's name is 1 to 100 characters without commas, got {name!r}")
    consumer = _consumers[name] = Consumer(name, types, handle, serves)
    return consumer


def unsubscribe(name: str) -> None:
    _consumers.pop(name, None)


def consumers() -> list[Consumer]:
    """The registered consumers, in the order they subscribed (the order each event reaches them)."""
    return list(_consumers.values())


def wanted(event_type: str) -> bool:
    """Whether any consumer subscribes to ``event_type`` (a publisher may skip building what nobody reads)."""
    return any(event_type in consumer.types for consumer in _consumers.values())


def wanted_for_every_tenant(event_type: str) -> bool:
    """Whether a consumer wants every tenant's ``event_type`` events (then ``audience`` asks nobody)."""
    return any(event_type in consumer.types and consumer.serves is None for consumer in _consumers.values())


def audience(conn, event_type: str, tenant_ids) -> set[int]:
    """The tenants among ``tenant_ids`` whose ``event_type`` events some consumer wants (see ``subscribe``)."""
    tenant_ids = set(tenant_ids)
    if wanted_for_every_tenant(event_type):
        return tenant_ids
    wanted_by: set[int] = set()
    for consumer in _consumers.values():
        if event_type in consumer.types:
            wanted_by |= set(consumer.serves(conn, tenant_ids - wanted_by)) & tenant_ids
            if wanted_by == tenant_ids:
                break
    return wanted_by


def discover(package: str = "saas") -> list[str]:
    """Import every ``consumers`` module in ``package``'s tree (each subscribes its consumers); their names."""
    root = importlib.import_module(package)
    found = []
    for base in root.__path__:
        for directory, subdirectories, files in os.walk(base):
            # Packages, plain or namespace ones (messaging's rooms have no __init__).
            subdirectories[:] = sorted(d for d in subdirectories if d.isidentifier() and not d.startswith("__"))
            if "consumers.py" in files:
                relative = os.path.relpath(directory, base)
                found.append(".".join([package, *([] if relative == "." else relative.split(os.sep)), "consumers"]))
    for module in found:
        importlib.import_module(module)
    return found


def publish(conn, events: list[Event]) -> int:
    """Write ``events`` to the outbox on ``conn``, in the caller's transaction; how many were written.

    One pipelined executemany (nothing for events no consumer wants). They
    are delivered by ``commit`` (or ``deliver_published``) right after the
    transaction commits, or else by the sweep; nothing if it rolls back.
    """
    tenants_by_type: dict[str, set[int]] = {}
    for event in events:
        tenants_by_type.setdefault(event.type, set()).add(event.tenant_id)
    wanted_by_type = {event_type: audience(conn, event_type, tenant_ids)
                      for event_type, tenant_ids in tenants_by_type.items()}
    kept = [event for event in events if event.tenant_id in wanted_by_type[event.type]]
    if not kept:
        return 0
    outbox.write(conn, kept, utcnow())
    published([event.stream for event in kept])
    return len(kept)


def published(streams) -> None:
    """Note that events of ``streams`` were written to the outbox in the caller's transaction (by ``publish``,
    or by a statement of the caller's own that inserts them with its rows), so that ``commit`` delivers them."""
    noted = _published.get()
    if noted is None:
        noted = set()
        _published.set(noted)
    noted.update(stream[:outbox.STREAM_LENGTH] for stream in streams)


def commit(session) -> int:
    """Commit ``session`` (raising what the commit raises), then deliver what was published; how many."""
    session.commit()
    return deliver_published(session)


def deliver_published(session) -> int:
    """Deliver the due events of the streams this context published in since its last delivery; how many
    were delivered here. Call it right after the commit. In a request, with EVENTS_IN_BACKGROUND, they are
    handed to the app's deliverer (0 here); else delivered now, in transactions of
    ``session``'s own. Never raises: what cannot be delivered now (an earlier event of its stream waits, a
    consumer fails, the database is gone) waits for the sweep."""
    streams = _published.get()
    if not streams:
        return 0
    _published.set(None)
    deliverer = _deliverer()
    if deliverer is not None:
        deliverer.hand(streams)
        return 0
    return deliver_streams(session, streams)


def deliver_streams(session, streams) -> int:
    """Deliver the due, ready events of ``streams`` in transactions of ``session``'s own; how many. Never
    raises (see ``deliver_published``)."""
    delivered = 0
    try:
        claim = outbox.in_streams(sorted(streams), limit=CLAIM_LIMIT)
        while True:
            batch = outbox.deliver(session, consumers(), claim, utcnow())
            delivered += batch
            if batch < CLAIM_LIMIT:
                return delivered
    except Exception:
        log.exception("domain events of %d streams left for the sweep", len(streams))
        try:
            session.rollback()
        except Exception:
            log.debug("rollback after a failed delivery failed", exc_info=True)
    return delivered


@contextmanager
def handed_to_deliverer():
    """Within it (in an app context), commits hand their events to the process's deliverer as a request's
    do (with EVENTS_IN_BACKGROUND): many small transactions' events are then delivered in sets."""
    token = _handed_over.set(True)
    try:
        yield
    finally:
        _handed_over.reset(token)


def _deliverer() -> "Deliverer | None":
    if not has_request_context() and not (_handed_over.get() and has_app_context()):
        return None
    app = current_app._get_current_object()
    if not app.config.get("EVENTS_IN_BACKGROUND"):
        return None
    deliverer = app.extensions.get("event_deliverer")
    if deliverer is None:
        deliverer = app.extensions.setdefault("event_deliverer", Deliverer(app))
    return deliverer


class Deliverer:
    """One per app and process: a thread delivering the streams this process's commits hand it.

    Commits arriving while it delivers are taken together by its next round: under load one transaction
    (claim, consumers, delete, commit) carries many requests' events, and consumers write them in sets.
    What it holds when the process ends is in the outbox, delivered by another process's sweep.
    """

    def __init__(self, app):
        self.app = app
        self._changed = threading.Condition(threading.Lock())
        self._pending: set[str] = set()
        self._busy = False
        self._wake = threading.Event()
        self._pid = None

    def hand(self, streams) -> None:
        """Have ``streams``' events delivered soon (returns at once)."""
        with self._changed:
            self._pending.update(streams)
            if self._pid != os.getpid():  # first use in this process (a forked worker starts its own)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="domain events", daemon=True).start()
        self._wake.set()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until what was handed so far is delivered (or left for the sweep); True unless it timed out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    return not (self._pending or self._busy)
        return True

    def _run(self) -> None:
        from saas.extensions import db

        while True:
            self._wake.wait()
            with self._changed:
                self._wake.clear()
                streams, self._pending = self._pending, set()
                self._busy = bool(streams)
            if not streams:
                continue
            try:
                with self.app.app_context():
                    try:
                        deliver_streams(db.session, streams)
                    finally:
                        db.session.remove()
            except Exception:
                log.exception("domain events of %d streams left for the sweep", len(streams))
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


def sweep(*, older_than: timedelta = SWEEP_AFTER, limit: int = CLAIM_LIMIT, rounds: int = 20,
          now: datetime | None = None, session=None) -> int:
    """Deliver events written before ``older_than`` ago that are still in the outbox; how many.

    What a crash between commit and delivery left, and failed events whose
    backoff is over. Safe in any number of processes at once: each event is
    claimed by one, and a stream's events still go in order. Commits.
    """
    if session is None:
        from saas.extensions import db

        session = db.session
    now = now or utcnow()
    claim = outbox.left_over(cutoff=now - older_than, limit=limit)
    delivered = 0
    for _ in range(rounds):
        batch = outbox.deliver(session, consumers(), claim, now)
        delivered += batch
        if batch == 0:
            break
    if delivered:
        log.warning("delivered %d domain events left in the outbox", delivered)
    return delivered
