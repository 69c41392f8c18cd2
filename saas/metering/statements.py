"""The metering port's one-statement form (PostgreSQL): the ledger's CTEs, appended to the caller's.

The caller's CTE ``source`` yields the rows to meter (columns tenant_id,
period_start, opened, conversation_id, message_id). What each row counts
depends on whether it opened a conversation, which only the statement knows:
both charges (opened, joined) are passed in, and each row takes its own.
"""
from __future__ import annotations

import functools

from sqlalchemy import text

from saas.billing.pricing import CONVERSATION, MESSAGE, Charge


def unit_params(opened: Charge, joined: Charge) -> dict:
    """The bind parameters of ``composed``'s unit rows and billed rows, for these two charges."""
    metrics = sorted(set(opened.units) | set(joined.units))
    params = {}
    for n, metric in enumerate(metrics):
        params.update({f"unit_metric_{n}": metric, f"unit_opened_{n}": opened.units.get(metric, 0),
                       f"unit_joined_{n}": joined.units.get(metric, 0)})
    for name, charge in (("opened", opened), ("joined", joined)):
        params[f"billed_{name}"] = charge.billed
        params[f"billed_by_{name}"] = charge.kind == CONVERSATION
    return params


def unit_count(params: dict) -> int:
    return sum(1 for name in params if name.startswith("unit_metric_"))


@functools.lru_cache(maxsize=64)
def composed(with_list: str, source: str, final_select: str, units: int):
    """The caller's WITH list, the ledger's CTEs for ``units`` unit rows, then ``final_select``."""
    return text(with_list + _ledger_ctes(source, units) + "\n" + final_select)


def _ledger_ctes(source: str, units: int) -> str:
    rows = ", ".join(f"(CAST(:unit_metric_{n} AS varchar), CAST(:unit_opened_{n} AS integer), "
                     f"CAST(:unit_joined_{n} AS integer))" for n in range(units))
    counted = "CASE WHEN s.opened THEN u.if_opened ELSE u.if_joined END"
    return f"""
        , usage_entry AS (
            INSERT INTO usage_entries (tenant_id, period_start, metric, quantity, created_at)
            SELECT s.tenant_id, s.period_start, u.metric, {counted}, :now
            FROM {source} s, (VALUES {rows}) AS u (metric, if_opened, if_joined)
            WHERE {counted} <> 0
        ), usage_record AS (
            INSERT INTO usage_records (tenant_id, metric, quantity, identifier, subject, period_start,
                                       created_at, attempts)
            SELECT s.tenant_id, b.metric, 1, :record_identifier,
                   CASE WHEN b.by_conversation THEN '{CONVERSATION}:' || s.conversation_id
                        ELSE '{MESSAGE}:' || s.message_id END,
                   s.period_start, :now, 0
            FROM {source} s, (VALUES (TRUE, CAST(:billed_opened AS varchar), CAST(:billed_by_opened AS boolean)),
                                     (FALSE, CAST(:billed_joined AS varchar), CAST(:billed_by_joined AS boolean)))
                             AS b (opened, metric, by_conversation)
            WHERE b.opened = s.opened AND b.metric IS NOT NULL
        )"""
