"""The import job: read a stored CSV row by row and write it in batches, resumable at any point.

A worker claims the import with a lease (one conditional UPDATE: queued, or running with its lease over)
and renews it in each batch's transaction; a batch's contacts, labels, history, refused rows and the
import's progress commit together. A worker that dies leaves ``processed_rows`` exactly at its last
committed batch, and the next one (saas.contacts.imports.resume_stalled) skips that many rows and goes on:
no row is written twice. A worker that lost its lease (another took over) stops at its next batch.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from saas.billing import entitlements
from saas.contacts import attributes, import_batch, imports, limits
from saas.contacts.consent.records import record_import_opt_in
from saas.contacts.models import ContactImport
from saas.database import dropped
from saas.extensions import db
from saas.tenants.services import tenant_snapshot
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

BATCH = 1000
# How long a claim holds without a batch committed; a batch of BATCH rows takes well under a second.
LEASE = timedelta(minutes=2)


class LeaseLost(Exception):
    """Another worker took the import over (this one's lease ran out): this one stops."""


@dataclass
class Run:
    """One worker's run of one import."""

    import_id: int
    tenant_id: int
    lease: datetime
    columns: list[tuple[int, str]]   # (CSV column index, field)
    kinds: dict[str, str]
    rights: object
    actor: str
    # (our PhoneNumber id, proof) when the import records its contacts as opted in to that number.
    opt_in: tuple[int, str | None] | None = None


def run(import_id: int) -> None:
    """The job: claim the import and read it to the end (or to where the plan's limit stops new contacts).
    Does nothing when another worker holds it or it has ended. What fails for good marks it failed, with the
    rows before committed; a lost database raises (RQ, or the sweep, runs it again)."""
    session = db.session
    lease = claim(session, import_id)
    if lease is None:
        return
    try:
        _read(session, import_id, lease)
    except LeaseLost:
        session.rollback()
        log.warning("contact import %s was taken over by another worker", import_id)
    except Exception as exc:
        session.rollback()
        if dropped(exc):
            raise
        log.exception("contact import %s failed", import_id)
        _end(session, import_id, lease, imports.FAILED, "An unexpected error stopped the import; the rows "
                                                        "counted as processed are imported.")


def claim(session, import_id: int, now: datetime | None = None) -> datetime | None:
    """Take the import (queued, or running with its lease over): the new lease's end, or None."""
    now = now or utcnow()
    lease = now + LEASE
    taken = session.execute(update(ContactImport).where(ContactImport.id == import_id, or_(
        ContactImport.status == imports.QUEUED,
        and_(ContactImport.status == imports.RUNNING,
             or_(ContactImport.lease_until.is_(None), ContactImport.lease_until < now))))
        .values(status=imports.RUNNING, lease_until=lease)).rowcount
    session.commit()
    return lease if taken == 1 else None


def _read(session, import_id: int, lease: datetime) -> None:
    row = session.execute(select(ContactImport.tenant_id, ContactImport.mapping, ContactImport.processed_rows,
                                 ContactImport.content, ContactImport.opt_in, ContactImport.phone_number_id,
                                 ContactImport.consent_proof).where(ContactImport.id == import_id)).one()
    reader = imports.rows_of(row.content, imports.delimiter_of(row.content))
    header = imports.checked_header(next(reader))
    current = Run(import_id, row.tenant_id, lease, [(header.index(column), field) for column, field in
                                                   row.mapping.items()],
                  attributes.definitions(row.tenant_id, session),
                  entitlements.for_tenant(tenant_snapshot(row.tenant_id)), f"import #{import_id}",
                  (row.phone_number_id, row.consent_proof) if row.opt_in and row.phone_number_id else None)
    done = row.processed_rows
    session.rollback()
    del row  # the reader holds the file's bytes; nothing else does
    batch: list[tuple[int, list[str]]] = []
    number = 1  # the header is row 1, as a spreadsheet numbers it
    try:
        for cells in reader:
            number += 1
            if not cells:
                continue
            if done:
                done -= 1
                continue
            batch.append((number, cells))
            if len(batch) == BATCH:
                _write(session, current, batch)
                batch = []
    except (csv.Error, UnicodeDecodeError) as exc:
        _write(session, current, batch)
        _end(session, import_id, current.lease, imports.FAILED, f"Row {number} could not be read ({exc}).")
        return
    _write(session, current, batch)
    _end(session, import_id, current.lease, imports.DONE, None)


def _write(session, current: Run, batch) -> None:
    """One batch in one transaction: lease renewed first (its row lock orders this worker against any
    other), then the rows, then the progress. Raises LeaseLost when another worker holds the import."""
    conn = session.connection()
    renewed = utcnow() + LEASE
    if conn.execute(update(ContactImport).where(ContactImport.id == current.import_id,
                                                ContactImport.lease_until == current.lease)
                    .values(lease_until=renewed)).rowcount != 1:
        raise LeaseLost()
    current.lease = renewed
    room = limits.room(session, current.tenant_id, current.rights)
    counts = import_batch.write(conn, current, batch, room)
    if current.opt_in is not None:
        number_id, proof = current.opt_in
        record_import_opt_in(session, current.tenant_id, counts.contact_ids, number_id, proof, current.actor)
    conn.execute(update(ContactImport).where(ContactImport.id == current.import_id).values(
        processed_rows=ContactImport.processed_rows + len(batch),
        created_count=ContactImport.created_count + counts.created,
        merged_count=ContactImport.merged_count + counts.merged,
        failed_count=ContactImport.failed_count + counts.failed))
    session.commit()


def _end(session, import_id: int, lease: datetime, status: str, error: str | None) -> None:
    """The import ended: its state, and the stored file dropped (it holds personal data no one reads again)."""
    session.execute(update(ContactImport).where(ContactImport.id == import_id, ContactImport.lease_until == lease)
                    .values(status=status, error=error, lease_until=None, content=None, finished_at=utcnow()))
    session.commit()
