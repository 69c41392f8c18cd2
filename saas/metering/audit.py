"""Usage against the rows it stands for: the proof that metering counted each send once."""
from __future__ import annotations

from saas.metering.services import Metering


def audit_usage(session, expected: dict[tuple, dict[str, int]]) -> tuple[list[str], int]:
    """Compare every tenant's usage, period by period, with what its rows say was billed.

    ``expected`` maps (tenant id, period start) to units by metric, as the
    sending side counts them from its own rows (saas.messaging.outbound.billed).
    Returns (the differences found, how many figures were checked). Read-only.
    """
    metering = Metering()
    conn = session.connection()
    periods = set(expected) | set(metering.periods(conn))
    problems, checked = [], 0
    for tenant_id, period_start in sorted(periods):
        actual = metering.usage_for(conn, tenant_id, period_start)
        wanted = expected.get((tenant_id, period_start), {})
        for metric in sorted(set(actual) | set(wanted)):
            checked += 1
            if actual.get(metric, 0) != wanted.get(metric, 0):
                problems.append(f"tenant {tenant_id} period {period_start:%Y-%m-%d} {metric}: "
                                f"usage {actual.get(metric, 0)}, rows {wanted.get(metric, 0)}")
    session.rollback()
    return problems, checked
