"""CSV exports, written a batch at a time so any size streams in flat memory: a tenant's contacts (the columns
an import reads back: wa_id, name, labels, attr:<key>), and an import's rows it could not take."""
from __future__ import annotations

import csv
import io

from sqlalchemy import select

from saas.contacts import attributes, labels as contact_labels, queries
from saas.contacts.models import ContactImportError
from saas.timeutil import iso

BATCH = 1000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text is
# written with a leading apostrophe, which spreadsheets show as text and hide.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTACT_COLUMNS = ["id", "wa_id", "user_id", "name", "country", "labels", "source", "created_at", "last_inbound_at"]


def inert_cell(value) -> str:
    """A cell's text as a spreadsheet shows it and never runs it (numbers, negative ones too, stay numbers)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def contacts_csv(session, tenant_id: int, filters: queries.Filters):
    """The tenant's contacts passing ``filters``, oldest first, as CSV text chunks (the header first)."""
    keys = list(attributes.definitions(tenant_id, session))
    yield _csv_text([CONTACT_COLUMNS + [f"attr:{key}" for key in keys]])
    for batch in queries.in_batches(session, tenant_id, filters, size=BATCH):
        labelled = contact_labels.labels_of(session, tenant_id, [contact.id for contact in batch])
        rows = []
        for contact in batch:
            values = contact.attributes or {}
            rows.append([contact.id, contact.wa_id or "", contact.user_id or "", inert_cell(contact.name),
                         contact.country or "", inert_cell("; ".join(labelled.get(contact.id, []))), contact.source,
                         iso(contact.created_at), iso(contact.last_inbound_at) or ""]
                        + [inert_cell(values.get(key)) for key in keys])
        yield _csv_text(rows)


def import_errors_csv(session, import_id: int):
    """An import's refused rows, in file order: the row's number in the file, why, and the row as it came."""
    yield _csv_text([["row", "error", "raw"]])
    after = 0
    while True:
        batch = session.execute(
            select(ContactImportError.row_number, ContactImportError.error, ContactImportError.raw)
            .where(ContactImportError.import_id == import_id, ContactImportError.row_number > after)
            .order_by(ContactImportError.row_number).limit(BATCH)).all()
        if not batch:
            return
        yield _csv_text([[row.row_number, row.error, inert_cell(row.raw)] for row in batch])
        after = batch[-1].row_number  # one error per row: the row number is the key
