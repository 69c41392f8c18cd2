"""CSV exports through saas.csv_stream, a batch at a time so any size streams in flat memory: a tenant's
contacts (the columns an import reads back: wa_id, name, labels, attr:<key>), and an import's rows it could
not take."""
from __future__ import annotations

from sqlalchemy import select

from saas.contacts import attributes, labels as contact_labels, queries
from saas.contacts.models import ContactImportError
from saas.csv_stream import BATCH, flatten, stream
from saas.timeutil import iso

CONTACT_COLUMNS = ["id", "wa_id", "user_id", "name", "country", "labels", "source", "created_at", "last_inbound_at"]


def contacts_csv(session, tenant_id: int, filters: queries.Filters):
    """The tenant's contacts passing ``filters``, oldest first, as CSV text chunks (the header first)."""
    keys = list(attributes.definitions(tenant_id, session))
    return stream(CONTACT_COLUMNS + [f"attr:{key}" for key in keys],
                  flatten(_contact_rows(session, tenant_id, filters, keys)))


def _contact_rows(session, tenant_id: int, filters: queries.Filters, keys: list[str]):
    for batch in queries.in_batches(session, tenant_id, filters, size=BATCH):
        labelled = contact_labels.labels_of(session, tenant_id, [contact.id for contact in batch])
        rows = []
        for contact in batch:
            values = contact.attributes or {}
            rows.append([contact.id, contact.wa_id, contact.user_id, contact.name, contact.country,
                         "; ".join(labelled.get(contact.id, [])), contact.source, iso(contact.created_at),
                         iso(contact.last_inbound_at)] + [values.get(key) for key in keys])
        yield rows


def import_errors_csv(session, import_id: int):
    """An import's refused rows, in file order: the row's number in the file, why, and the row as it came."""
    return stream(["row", "error", "raw"], flatten(_error_rows(session, import_id)))


def _error_rows(session, import_id: int):
    after = 0
    while True:
        batch = session.execute(
            select(ContactImportError.row_number, ContactImportError.error, ContactImportError.raw)
            .where(ContactImportError.import_id == import_id, ContactImportError.row_number > after)
            .order_by(ContactImportError.row_number).limit(BATCH)).all()
        if not batch:
            return
        yield [[row.row_number, row.error, row.raw] for row in batch]
        after = batch[-1].row_number  # one error per row: the row number is the key
