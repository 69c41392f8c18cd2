"""Metering a batch of sends at once: what ``Metering.meter_send`` does for each in turn, in set-based statements."""
from __future__ import annotations

from collections import defaultdict

from saas.billing.models import CATEGORIES
from saas.database import insert_many
from saas.errors import PaymentRequired, QuotaExceeded
from saas.metering.models import UsageEntry, UsageRecord


class _BatchCount:
    """``used(metrics)`` for the pricing policy over a batch: the period's usage so far (counted once per
    set of metrics from the ledger, under the tenant's quota lock taken at the first count) plus what
    the batch admitted before the send being decided."""

    def __init__(self, metering, conn, tenant_id: int, period_start):
        self.metering, self.conn, self.tenant_id, self.period_start = metering, conn, tenant_id, period_start
        self.counted: dict[tuple, int] = {}
        self.added: dict[str, int] = defaultdict(int)
        self.locked = False

    def __call__(self, metrics) -> int:
        metrics = tuple(metrics)
        if metrics not in self.counted:
            if not self.locked:
                self.metering._lock_quota(self.conn, self.tenant_id)
                self.locked = True
            self.counted[metrics] = self.metering._used(self.conn, self.tenant_id, self.period_start, metrics)
        return self.counted[metrics] + sum(self.added[metric] for metric in metrics)

    def add(self, units: dict) -> None:
        for metric, quantity in units.items():
            self.added[metric] += quantity


class MeteringMany:
    """``meter_many`` for saas.metering.services.Metering (its ``clock``, ``pricing``, ``rights_of``,
    ``_lock_quota``, ``_used`` and ``new_record_identifier``)."""

    def meter_many(self, conn, rights, tenant_id: int, period_start, sends: list) -> list:
        """``meter_send`` for each of ``sends`` (pricing's Send, message ids known) in turn, in the caller's
        transaction; ``rights`` None: the tenant's rights now.

        Each send is priced and admitted by billing's pricing policy exactly as
        it would be alone, after the ones before it: its quota counted from the
        ledger once for the lot (under the tenant's quota lock) plus what the
        batch admitted so far. A refused send gets the very QuotaExceeded or
        PaymentRequired ``meter_send`` raises, with nothing of it written; so
        does every later send into a window whose opening was refused (alone,
        it would have tried to open it again). The caller takes back its own
        rows for those. What passes is written in set-based statements: one
        ledger entry per metric (the sums), one usage record per billable unit.
        Returns a Receipt or the refusal per send, in order.
        """
        if any(send.category not in CATEGORIES for send in sends):
            raise ValueError("unknown category")
        from saas.metering.services import Receipt, Usage  # the port's own types (services imports this module)

        rights = rights if rights is not None else self.rights_of(tenant_id)
        used = _BatchCount(self, conn, tenant_id, period_start)
        outcomes, charges, closed = [], [], {}
        for send in sends:
            charge = self.pricing.charge(rights, send)
            refused = closed.get(send.conversation_id)
            if refused is None and charge.billed is not None:
                try:
                    self.pricing.admit(rights, send, used)
                except (QuotaExceeded, PaymentRequired) as exc:
                    refused = exc
            if refused is not None:
                if send.opened:
                    closed[send.conversation_id] = refused
                outcomes.append(refused)
                continue
            used.add(charge.units)
            charges.append(charge)
            outcomes.append(Receipt(Usage(tenant_id, period_start, charge.units),
                                    charge.subject if charge.billed else None))
        self._write_many(conn, tenant_id, period_start, charges)
        return outcomes

    def _write_many(self, conn, tenant_id: int, period_start, charges: list) -> None:
        now = self.clock()
        sums: dict[str, int] = defaultdict(int)
        for charge in charges:
            for metric, quantity in charge.units.items():
                sums[metric] += quantity
        entries = [{"tenant_id": tenant_id, "period_start": period_start, "metric": metric, "quantity": quantity,
                    "created_at": now} for metric, quantity in sorted(sums.items()) if quantity]
        records = [{"tenant_id": tenant_id, "metric": charge.billed, "quantity": charge.units[charge.billed],
                    "identifier": self.new_record_identifier(charge.kind), "subject": charge.subject or "",
                    "period_start": period_start, "created_at": now, "attempts": 0}
                   for charge in charges if charge.billed is not None and charge.units.get(charge.billed)]
        insert_many(conn, UsageEntry.__table__, entries)
        insert_many(conn, UsageRecord.__table__, records)
