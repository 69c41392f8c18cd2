"""A delivered batch's runs and their lines in the threads, written in sets.

Which rules ran on the batch's messages before (an event delivered again) is read in one statement up front;
the batch's new runs are then inserted in one statement (ON CONFLICT DO NOTHING RETURNING, in the order the
rules ran, so ids are handed out as one by one) and their rule-run lines in one more. A run another
transaction wrote in between (its actions done there) makes the batch fail: the delivery is rolled back and
tried again, when the run is found written and nothing is done twice.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from saas.automation.models import Run
from saas.database import among, insert_many
from saas.inbox import threads

class WrittenMeanwhile(RuntimeError):
    """A run of the batch was written by another transaction after the batch read the runs written before."""


class BatchRuns:
    """The runs of a batch of inbound messages: whether a rule ran on a message before (``ran``), the new ones
    kept (``add``, ``log``) and written together (``flush``)."""

    def __init__(self, conn, rules_by_tenant: dict, messages):
        self.done: set[tuple] = set()  # (tenant, rule, WhatsApp message id): written before, or by this batch
        self.due: list[int] = []  # the written runs with a reply to send, in order
        self._runs: list[dict] = []
        self._replying: set[tuple] = set()
        self._ids: dict[tuple, int] = {}
        self._lines: list[tuple] = []
        rule_ids = sorted({rule.id for rules in rules_by_tenant.values() for rule in rules})
        wamids = sorted({message.wa_message_id for message in messages})
        if rule_ids and wamids:
            self.done = set(conn.execute(select(Run.tenant_id, Run.rule_id, Run.wa_message_id).where(
                Run.tenant_id.in_(sorted({message.tenant_id for message in messages})),
                among(conn, Run.rule_id, rule_ids), among(conn, Run.wa_message_id, wamids))).tuples())

    def ran(self, rule, message) -> bool:
        """Whether ``rule`` ran on ``message`` before (or earlier in this batch)."""
        return (message.tenant_id, rule.id, message.wa_message_id) in self.done

    def add(self, rule, message, thread_id: int, now: datetime, *, replying: bool, **outcome) -> tuple:
        """A new run of ``rule`` on ``message`` (its outcome: status, body, finished_at, error_title); its key.
        ``replying``: it has a reply to send (its id goes to ``due`` once written)."""
        key = (message.tenant_id, rule.id, message.wa_message_id)
        self.done.add(key)
        row = {"tenant_id": message.tenant_id, "rule_id": rule.id, "rule_name": rule.name,
               "wa_message_id": message.wa_message_id, "phone_number_id": message.number_pk,
               "wa_id": message.wa_id, "thread_id": thread_id, "created_at": now, "status": outcome["status"],
               "body": outcome.get("body"), "finished_at": outcome.get("finished_at"),
               "error_title": outcome.get("error_title")}
        self._runs.append(row)
        if replying:
            self._replying.add(key)
        return key

    def log(self, key: tuple, thread_id: int, rule, outcome: str, now: datetime) -> None:
        """The run's line in the thread (as ``threads.log_rule_run`` writes it), written with the run."""
        self._lines.append((key, thread_id, rule, outcome, now))

    def logged_on(self, thread_id: int) -> bool:
        """Whether a line waits to be written on the thread (written first when an action writes one there)."""
        return any(line[1] == thread_id for line in self._lines)

    def flush(self, conn) -> None:
        """The runs and lines kept so far, written: a statement each."""
        if self._runs:
            written = {(tenant_id, rule_id, wamid): run_id for run_id, tenant_id, rule_id, wamid in insert_many(
                conn, Run.__table__, self._runs, returning=("id", "tenant_id", "rule_id", "wa_message_id"),
                conflict=("tenant_id", "rule_id", "wa_message_id"))}
            keys = [(row["tenant_id"], row["rule_id"], row["wa_message_id"]) for row in self._runs]
            if len(written) < len(keys):
                raise WrittenMeanwhile(f"runs written by another delivery: {sorted(set(keys) - set(written))}")
            self._ids.update(written)
            self.due += [written[key] for key in keys if key in self._replying]
            self._runs = []
        if self._lines:
            threads.log_rule_runs(conn, [
                threads.rule_run_row(key[0], thread_id, rule.name, outcome, now,
                                     detail={"rule_id": rule.id, "run_id": self._ids[key], "trigger": rule.trigger})
                for key, thread_id, rule, outcome, now in self._lines])
            self._lines = []
