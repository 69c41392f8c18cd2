"""Metering a batch of sends at once: what ``Metering.meter`` does for each, in set-based statements."""
from __future__ import annotations

from collections import defaultdict

from saas.database import insert_many
from saas.errors import QuotaExceeded
from saas.metering.models import CATEGORIES, METRIC_CONVERSATIONS, UsageEntry, UsageRecord


def quota_exceeded(cap: int, used: int) -> QuotaExceeded:
    """The refusal of a conversation past the plan's included ``cap`` (``used`` of it used)."""
    return QuotaExceeded(
        f"Your plan includes {cap} conversations this period and all of them are used. "
        "Upgrade your plan to send more.",
        details={"quota": cap, "used": used, "metric": METRIC_CONVERSATIONS}, upgrade=True)


class MeteringMany:
    """``meter_many`` for saas.metering.services.Metering (its ``clock``, ``_lock_quota``, ``_used`` and
    ``new_record_identifier``)."""

    def meter_many(self, conn, usages: list, *, cap: int | None = None,
                   subjects: list[str | None] | None = None) -> list:
        """``meter`` for many units at once (a batch of sends), in the caller's transaction.

        Exactly what ``meter`` would do for each in turn: a unit that opens
        conversations under ``cap`` passes while its period's conversations
        stay within it (one lock and one count for the lot), and each one past
        it gets the QuotaExceeded ``meter`` would raise, with nothing of it
        written; the caller takes back what it wrote for those. What passes is
        written in set-based statements: one ledger entry per period and
        category (the sums), one usage record per conversation. Returns a
        Receipt or a QuotaExceeded per unit, in order.
        """
        subjects = subjects or [None] * len(usages)
        if any(usage.category not in CATEGORIES for usage in usages):
            raise ValueError("unknown category")
        from saas.metering.services import Receipt  # the port's own type (services imports this module)

        used = {}
        if cap is not None:
            for tenant_id, period_start in sorted({(u.tenant_id, u.period_start) for u in usages if u.conversations}):
                self._lock_quota(conn, tenant_id)
                used[(tenant_id, period_start)] = self._used(conn, tenant_id, period_start, METRIC_CONVERSATIONS)
        outcomes = []
        for usage, subject in zip(usages, subjects):
            key = (usage.tenant_id, usage.period_start)
            if usage.conversations and cap is not None:
                if used[key] + usage.conversations > cap:
                    outcomes.append(quota_exceeded(cap, used[key]))
                    continue
                used[key] += usage.conversations
            outcomes.append(Receipt(usage, subject if usage.conversations else None))
        self._write_many(conn, [o for o in outcomes if isinstance(o, Receipt)])
        return outcomes

    def _write_many(self, conn, receipts: list) -> None:
        now = self.clock()
        sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        for receipt in receipts:
            usage = receipt.usage
            entry = sums[(usage.tenant_id, usage.period_start, usage.category)]
            entry[0] += usage.messages
            entry[1] += usage.conversations
        entries = [{"tenant_id": t, "period_start": p, "category": c, "messages": m, "conversations": n,
                    "created_at": now} for (t, p, c), (m, n) in sorted(sums.items()) if m or n]
        records = [{"tenant_id": r.usage.tenant_id, "metric": METRIC_CONVERSATIONS, "quantity": r.usage.conversations,
                    "identifier": self.new_record_identifier(), "subject": r.subject or "",
                    "period_start": r.usage.period_start, "created_at": now, "attempts": 0}
                   for r in receipts if r.usage.conversations]
        insert_many(conn, UsageEntry.__table__, entries)
        insert_many(conn, UsageRecord.__table__, records)
