"""Overage to Stripe, exactly once: usage records past a plan's included amount become Billing Meter events.

Every billable unit (a conversation, or a message of a category a per-message
plan prices) writes a UsageRecord (the outbox) in the send's own transaction;
a refused send voids it. Each priced unit, conversations or messages, has its
own Billing Meter (saas.billing.meters), named by an event name from the
settings: a record's overage goes to the meter of the unit its metric counts,
which the metered price of a plan pricing that unit counts. The reporter works
through the outbox in two steps, and any number of reporters may run at once:

1. **Decide.** Once a record has settled (sends settle within 1.5x
   RECOVER_SENDS_AFTER_SECONDS; records are decided after ``settle_after``,
   2x by default, so a late void cannot change the count), each tenant's
   non-voided records of a period are taken in id order: the first that fit
   what the plan in effect includes (saas.billing.pricing.quota) are inside
   the plan (``overage`` False, marked reported, nothing sent), the rest are
   overage.
   A plan without an overage price (free, hard cap) never reports overage. A
   tenant on an overage plan without a Stripe customer or subscription waits,
   with ``last_error`` saying why. One tenant is decided by one reporter at a
   time (a PostgreSQL advisory lock; SQLite has one writer).
2. **Send.** Each overage record becomes one meter event, under its unit's
   event name, whose ``identifier`` and idempotency key are the record's
   identifier, so a resend (a crash between "Stripe accepted" and "marked
   reported", a timeout after Stripe counted it) is counted once by Stripe. A batch is claimed with FOR UPDATE
   SKIP LOCKED on PostgreSQL, so two reporters never send one record at the
   same time. A failed send counts an attempt and waits (30 s, doubling, at
   most an hour): Stripe down for an hour loses nothing. Stripe refuses events
   older than 35 days; such records are marked and listed by ``reconcile``.

What was reported is checked by saas.metering.reconciliation.
"""
from __future__ import annotations

import calendar
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import stripe
from sqlalchemy import case, func, or_, select, text, update

from saas.billing import entitlements, meters
from saas.billing.pricing import metric_unit, quota, split_overage
from saas.billing.services import subscription_for
from saas.extensions import db
from saas.metering.models import UsageRecord
from saas.metering.report_run import ReportRun
from saas.tenants.models import Tenant
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

# The first key of the advisory lock that lets one reporter at a time decide a tenant's records.
REPORT_LOCK_SPACE = 7_000_002
# Stripe refuses a meter event whose timestamp is more than 35 days in the past.
STRIPE_MAX_EVENT_AGE = timedelta(days=35)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
# Records read per statement while deciding (bounds memory, not the work done).
DECIDE_CHUNK = 5000

NO_CUSTOMER = "Waiting: the tenant has no Stripe customer, so its overage cannot be reported."
NO_SUBSCRIPTION = "Waiting: the tenant has no Stripe subscription, so its overage cannot be reported."
TOO_OLD = "Not sent: older than 35 days, and Stripe refuses meter events that old."

# Failures that say Stripe (or our key) is unusable now, not that this record is wrong:
# the run stops at the first one instead of waiting out a timeout per record.
UNAVAILABLE = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError, stripe.AuthenticationError,
               stripe.PermissionError)


def unix(moment: datetime) -> int:
    """Seconds since the epoch of a naive-UTC datetime, as Stripe's timestamps are."""
    return calendar.timegm(moment.utctimetuple())


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt (1, 2, ...): 30 s doubling, at most an hour."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LAST_RETRY)


def describe(exc: stripe.StripeError) -> str:
    status = f" (HTTP {exc.http_status})" if exc.http_status else ""
    return f"{type(exc).__name__}{status}: {exc.user_message or exc}"[:500]


@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: int
    identifier: str
    metric: str
    quantity: int
    created_at: datetime
    attempts: int
    stripe_customer_id: str | None


class UsageReporter:
    """Reports settled overage to Stripe's Billing Meters; see the module's docstring.

    ``client`` is the app's StripeClient; ``event_names`` maps each priced
    unit to its meter's event name (saas.billing.meters.event_names);
    ``clock`` says what time it is; ``settle_after`` is how old a record
    must be to be decided; ``batch`` is how many records one claim takes.
    """

    def __init__(self, client, *, event_names: dict[str, str], settle_after: timedelta, batch: int = 100,
                 clock=utcnow, session=None):
        self.client = client
        self.event_names = event_names
        self.settle_after = settle_after
        self.batch = batch
        self.clock = clock
        self.session = session or db.session

    @classmethod
    def from_config(cls, config, client, **overrides) -> "UsageReporter":
        """The app's reporter: records settle after 2x RECOVER_SENDS_AFTER_SECONDS."""
        options = {"event_names": meters.event_names(config),
                   "settle_after": timedelta(seconds=2 * config["RECOVER_SENDS_AFTER_SECONDS"])}
        options.update(overrides)
        return cls(client, **options)

    # -- the run ---------------------------------------------------------------------------------
    def report(self, *, budget: float | None = None) -> ReportRun:
        """Decide settled records, then send due overage in batches until none is left. Commits.

        Safe to run anywhere at once. ``budget`` (seconds) stops sending new
        batches after that long (the housekeeping thread has other work);
        the rest goes on the next run. A failure of the database (or of
        anything but Stripe) rolls back the batch in hand and propagates:
        nothing of it is marked, and its resend is counted once by Stripe.
        """
        run = ReportRun()
        deadline = time.monotonic() + budget if budget is not None else None
        self.decide(run)
        self._mark_too_old()
        while run.stopped is None:
            claimed = self._send_batch(run, deadline)
            if claimed < self.batch:
                break
        run.waiting, run.too_old_units = self.outstanding()
        if run.attempted or run.included:
            log.info("usage report: %s; %d failed", run.summary(), run.failed)
        return run

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, run: ReportRun | None = None) -> ReportRun:
        """Decide every settled record: inside the included amount, or overage. Commits per tenant."""
        run = run or ReportRun()
        cutoff = self.clock() - self.settle_after
        session = self.session
        try:
            pairs = session.execute(
                select(UsageRecord.tenant_id, UsageRecord.period_start).distinct()
                .where(UsageRecord.reported_at.is_(None), UsageRecord.voided_at.is_(None),
                       UsageRecord.overage.is_(None), UsageRecord.created_at < cutoff)).all()
        finally:
            session.rollback()
        periods: dict[int, list[datetime]] = defaultdict(list)
        for tenant_id, period_start in pairs:
            periods[tenant_id].append(period_start)
        for tenant_id in sorted(periods):
            self._decide_tenant(tenant_id, sorted(periods[tenant_id]), cutoff, run)
        return run

    def _decide_tenant(self, tenant_id: int, periods: list[datetime], cutoff: datetime, run: ReportRun) -> None:
        session = self.session
        try:
            if not self._lock_tenant(tenant_id):
                session.rollback()  # another reporter is deciding this tenant now
                return
            tenant = session.get(Tenant, tenant_id)
            if tenant is None:  # deleted since: its records went with it
                session.rollback()
                return
            subscription = subscription_for(tenant)
            plan = entitlements.for_tenant(tenant, subscription).effective
            if not plan.hard_cap:
                reason = (NO_CUSTOMER if not tenant.stripe_customer_id
                          else NO_SUBSCRIPTION if subscription is None or not subscription.stripe_subscription_id
                          else None)
                if reason is not None:
                    session.execute(
                        update(UsageRecord).where(*self._undecided(tenant_id, cutoff),
                                                  or_(UsageRecord.last_error.is_(None), UsageRecord.last_error != reason))
                        .values(last_error=reason))
                    session.commit()
                    return
            now = self.clock()
            for period_start in periods:
                self._decide_period(tenant_id, period_start, plan, cutoff, now, run)
            session.commit()
        except BaseException:
            session.rollback()
            raise

    def _decide_period(self, tenant_id, period_start, plan, cutoff, now, run: ReportRun) -> None:
        session = self.session
        terms = quota(plan)
        while True:
            rows = session.execute(
                select(UsageRecord.id, UsageRecord.metric, UsageRecord.quantity)
                .where(*self._undecided(tenant_id, cutoff), UsageRecord.period_start == period_start)
                .order_by(UsageRecord.id).limit(DECIDE_CHUNK)).all()
            if not rows:
                return
            included, overage = split_overage(terms, self._included_so_far(tenant_id, period_start, terms), rows)
            if included:
                session.execute(
                    update(UsageRecord).where(UsageRecord.id.in_([r.id for r in included]),
                                              UsageRecord.overage.is_(None))
                    .values(overage=False, reported_at=now, last_error=None, next_attempt_at=None))
                run.included += sum(r.quantity for r in included)
            if overage:
                session.execute(
                    update(UsageRecord).where(UsageRecord.id.in_([r.id for r in overage]),
                                              UsageRecord.overage.is_(None))
                    .values(overage=True, last_error=None, next_attempt_at=None))

    def _included_so_far(self, tenant_id, period_start, terms) -> int:
        """Units of the plan's priced metrics already decided inside its included amount this period."""
        if terms.hard_cap:
            return 0
        return self.session.scalar(
            select(func.coalesce(func.sum(UsageRecord.quantity), 0)).where(
                UsageRecord.tenant_id == tenant_id, UsageRecord.period_start == period_start,
                UsageRecord.metric.in_(terms.metrics), UsageRecord.voided_at.is_(None),
                UsageRecord.overage.is_(False)))

    @staticmethod
    def _undecided(tenant_id: int, cutoff: datetime) -> tuple:
        return (UsageRecord.tenant_id == tenant_id, UsageRecord.reported_at.is_(None),
                UsageRecord.voided_at.is_(None), UsageRecord.overage.is_(None), UsageRecord.created_at < cutoff)

    def _lock_tenant(self, tenant_id: int) -> bool:
        conn = self.session.connection()
        # SQLite needs nothing: BEGIN IMMEDIATE already makes this the only writer.
        if conn.dialect.name != "postgresql":
            return True
        return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:space, :tenant)"),
                                 {"space": REPORT_LOCK_SPACE, "tenant": tenant_id}).scalar())

    # -- sending ---------------------------------------------------------------------------------
    def _mark_too_old(self) -> int:
        """Give up on overage Stripe would refuse (older than 35 days): marked, listed by the check, never retried."""
        session = self.session
        try:
            marked = session.execute(
                update(UsageRecord).where(
                    UsageRecord.overage.is_(True), UsageRecord.reported_at.is_(None), UsageRecord.voided_at.is_(None),
                    UsageRecord.created_at < self.clock() - STRIPE_MAX_EVENT_AGE,
                    or_(UsageRecord.last_error.is_(None), UsageRecord.last_error != TOO_OLD))
                .values(last_error=TOO_OLD, next_attempt_at=None)).rowcount
            session.commit()
        except BaseException:
            session.rollback()
            raise
        if marked:
            log.error("%d overage records are older than Stripe accepts and were not reported", marked)
        return marked

    def _send_batch(self, run: ReportRun, deadline: float | None) -> int:
        """Claim up to ``batch`` due overage records, send them, mark what happened. Returns how many were claimed."""
        session = self.session
        now = self.clock()
        query = (
            select(UsageRecord.id, UsageRecord.tenant_id, UsageRecord.identifier, UsageRecord.metric,
                   UsageRecord.quantity, UsageRecord.created_at, UsageRecord.attempts, Tenant.stripe_customer_id)
            .join(Tenant, Tenant.id == UsageRecord.tenant_id)
            .where(UsageRecord.overage.is_(True), UsageRecord.reported_at.is_(None), UsageRecord.voided_at.is_(None),
                   or_(UsageRecord.next_attempt_at.is_(None), UsageRecord.next_attempt_at <= now),
                   UsageRecord.created_at >= now - STRIPE_MAX_EVENT_AGE)
            .order_by(UsageRecord.id).limit(self.batch))
        try:
            postgresql = session.connection().dialect.name == "postgresql"
            if postgresql:
                # Held until the batch is marked: a second reporter skips these rows and takes the next ones.
                query = query.with_for_update(of=UsageRecord, skip_locked=True)
            claimed = [Claimed(*row) for row in session.execute(query)]
            if not postgresql:
                # SQLite's one write lock would stop every send while Stripe answers: let go of it.
                session.commit()
            accepted, failed = [], []
            for record in claimed:
                if deadline is not None and time.monotonic() > deadline:
                    run.stopped = "out of time; the rest goes on the next run"
                    break
                error = self._send(record)
                if error is None:
                    accepted.append(record)
                    continue
                failed.append((record, error[0]))
                if error[1]:
                    run.stopped = f"Stripe is unavailable ({error[0]})"
                    break
            self._mark(accepted, failed)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        run.attempted += len(accepted) + len(failed)
        run.failed += len(failed)
        for record in accepted:
            run.reported_units[metric_unit(record.metric)] += record.quantity
        run.tenants.update(r.tenant_id for r in accepted)
        run.errors.update(message for _, message in failed)
        return len(claimed)

    def _send(self, record: Claimed) -> tuple[str, bool] | None:
        """One meter event, to the meter of the record's unit; None when Stripe accepted it, else (the error,
        whether Stripe is unavailable)."""
        if not record.stripe_customer_id:
            return NO_CUSTOMER, False
        event_name = self.event_names.get(metric_unit(record.metric))
        if event_name is None:
            return f"Not sent: no Billing Meter counts the metric {record.metric!r}.", False
        try:
            self.client.v1.billing.meter_events.create(
                params={"event_name": event_name,
                        "payload": {"stripe_customer_id": record.stripe_customer_id, "value": str(record.quantity)},
                        "identifier": record.identifier,
                        "timestamp": unix(record.created_at)},
                options={"idempotency_key": record.identifier})
        except stripe.StripeError as exc:
            log.warning("meter event %s not reported: %s", record.identifier, describe(exc),
                        extra={"tenant_id": record.tenant_id})
            return describe(exc), isinstance(exc, UNAVAILABLE)
        return None

    def _mark(self, accepted: list[Claimed], failed: list[tuple[Claimed, str]]) -> None:
        session = self.session
        now = self.clock()
        if accepted:
            session.execute(
                update(UsageRecord).where(UsageRecord.id.in_([r.id for r in accepted]),
                                          UsageRecord.reported_at.is_(None))
                .values(reported_at=now, attempts=UsageRecord.attempts + 1, last_error=None, next_attempt_at=None))
        for record, message in failed:
            session.execute(
                update(UsageRecord).where(UsageRecord.id == record.id, UsageRecord.reported_at.is_(None))
                .values(attempts=UsageRecord.attempts + 1, last_error=message,
                        next_attempt_at=now + retry_delay(record.attempts + 1)))

    # -- what is left ----------------------------------------------------------------------------
    def outstanding(self) -> tuple[dict[str, int], Counter]:
        """Units not reported yet, by reason, and those Stripe will no longer take, by priced unit. Read-only."""
        session = self.session
        now = self.clock()
        reason = case(
            (UsageRecord.overage.is_(None) & (UsageRecord.created_at >= now - self.settle_after), "settling"),
            (UsageRecord.overage.is_(None) & (UsageRecord.last_error == NO_CUSTOMER), "no Stripe customer"),
            (UsageRecord.overage.is_(None) & (UsageRecord.last_error == NO_SUBSCRIPTION), "no Stripe subscription"),
            (UsageRecord.overage.is_(None), "not decided yet"),
            (UsageRecord.created_at < now - STRIPE_MAX_EVENT_AGE, "too old"),
            (UsageRecord.next_attempt_at > now, "retrying after an error"),
            else_="due now")
        try:
            rows = session.execute(
                select(reason, UsageRecord.metric, func.sum(UsageRecord.quantity))
                .where(UsageRecord.reported_at.is_(None), UsageRecord.voided_at.is_(None))
                .group_by(reason, UsageRecord.metric)).all()
        finally:
            session.rollback()
        waiting, too_old = Counter(), Counter()
        for name, metric, n in rows:
            if name == "too old":
                too_old[metric_unit(metric)] += int(n)
            elif n:
                waiting[name] += int(n)
        return dict(waiting), too_old
