"""What one run of the overage reporter (saas.metering.reporting) did, said in the units it counted."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def units_text(counts: Counter, adjective: str) -> str:
    """Units by priced unit, as words: "2 overage conversations and 1 overage message"; "" for none."""
    return " and ".join(_count(n, f"{adjective} {unit.removesuffix('s')}") for unit, n in sorted(counts.items()) if n)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass
class ReportRun:
    """What one run did, in units (conversations or messages), not records: a record may stand for several."""

    reported_units: Counter = field(default_factory=Counter)  # priced unit -> overage Stripe accepted in this run
    tenants: set = field(default_factory=set)  # whose overage was reported in this run
    included: int = 0                 # decided inside included amounts in this run (nothing sent)
    attempted: int = 0                # meter events tried in this run
    failed: int = 0                   # of those, refused or not answered
    errors: Counter = field(default_factory=Counter)  # error -> failed attempts in this run
    stopped: str | None = None        # why sending stopped before the outbox was empty
    waiting: dict = field(default_factory=dict)  # after the run: reason -> units not reported yet
    # After the run: priced unit -> overage Stripe will no longer take.
    too_old_units: Counter = field(default_factory=Counter)

    @property
    def reported(self) -> int:
        """Overage units Stripe accepted in this run, whatever their unit."""
        return sum(self.reported_units.values())

    @property
    def too_old(self) -> int:
        return sum(self.too_old_units.values())

    @property
    def all_failed(self) -> bool:
        return self.attempted > 0 and self.failed == self.attempted

    def summary(self) -> str:
        waiting = sum(self.waiting.values())
        reasons = "; ".join(f"{n} {reason}" for reason, n in sorted(self.waiting.items()))
        tenants = f" for {_count(len(self.tenants), 'tenant')}" if self.tenants else ""
        return (f"Reported {units_text(self.reported_units, 'overage') or 'no overage'}{tenants}; "
                f"{self.included} within included amounts; {waiting} waiting" + (f" ({reasons})" if reasons else ""))
