"""One batch of an import's rows, written in set-based statements on the batch's connection.

Rows are checked one by one (a bad row is kept with why, never stops the others); rows of one number merge
(in the batch, and with a contact stored before): a name or an attribute the row gives replaces the stored
one, its labels are added, nothing is erased. New contacts are inserted together (a number an inbound
message created meanwhile merges instead), past the plan's limit refused row by row.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import JSON, BigInteger, String, bindparam, select, text, update

from saas.contacts import attributes, history, labels as contact_labels
from saas.contacts.models import SOURCE_IMPORT, Contact, ContactImportError
from saas.contacts.values import FieldProblem, labels as checked_labels, name as checked_name, phone, split_labels
from saas.database import insert_many
from saas.errors import InvalidRequest
from saas.timeutil import utcnow

RAW_LENGTH = 2000
ERROR_LENGTH = 300


@dataclass
class Row:
    """A row as it is written: its number in the file, and the fields it gives."""

    number: int
    wa_id: str
    country: str | None = None
    name: str | None = None
    labels: list[str] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    numbers: list[int] = field(default_factory=list)  # every row of the file merged into this one

    def __post_init__(self):
        self.numbers = self.numbers or [self.number]


@dataclass
class Counts:
    created: int = 0
    merged: int = 0
    failed: int = 0
    contact_ids: list[int] = field(default_factory=list)  # every contact the batch's rows name


def write(conn, run, batch: list[tuple[int, list[str]]], room: int | None) -> Counts:
    """Write ``batch`` ((row number, cells)) for ``run`` (saas.contacts.import_job.Run); ``room``: how many
    contacts the plan still lets the tenant create (None: no limit). The counts of this batch."""
    errors, rows = [], {}
    for number, cells in batch:
        try:
            row = parse(cells, run.columns, run.kinds, number)
        except InvalidRequest as exc:
            errors.append((number, _reason(exc), cells))
            continue
        if row.wa_id in rows:
            _merge_into(rows[row.wa_id], row)
        else:
            rows[row.wa_id] = row
    stored = _stored(conn, run.tenant_id, rows)
    new = [row for key, row in rows.items() if key not in stored]
    if room is not None and len(new) > room:
        for row in new[room:]:
            errors += [(number, f"Not created: your plan stores at most {run.rights.effective.max_contacts:,} "
                                "contacts. Upgrade, or delete contacts, and import these rows again.", None)
                       for number in row.numbers]
            del rows[row.wa_id]
        new = new[:room]
    created = _insert(conn, run, new)
    stored.update(_stored(conn, run.tenant_id, {row.wa_id: row for row in new if row.wa_id not in created}))
    changes = _update(conn, run, [(stored[key], row) for key, row in rows.items() if key in stored])
    ids = {**{key: contact_id for key, (contact_id, _, _) in stored.items()}, **created}
    added = contact_labels.add(conn, run.tenant_id, [(ids[key], label) for key, row in rows.items()
                                                     for label in row.labels])
    _history(conn, run, created, changes, added)
    _refused(conn, run.import_id, errors)
    return Counts(created=len(created), failed=len(errors),
                  merged=sum(len(row.numbers) - (1 if key in created else 0) for key, row in rows.items()),
                  contact_ids=sorted(ids[key] for key in rows))


def parse(cells: list[str], columns: list[tuple[int, str]], kinds: dict[str, str], number: int) -> Row:
    """A row's cells as the fields they fill; InvalidRequest (with the field) when one cannot be stored."""
    def cell(index: int) -> str:
        return cells[index].strip() if index < len(cells) else ""

    values: dict = {"labels": [], "attributes": {}}
    for index, target in columns:
        text = cell(index)
        if target == "wa_id":
            if not text:
                raise FieldProblem("wa_id", "The WhatsApp number is empty.")
            values["phone"] = phone(text)
        elif target == "name":
            values["name"] = checked_name(text)
        elif target == "labels":
            values["labels"] += checked_labels(split_labels(text))
        elif text:
            key = target[5:]
            values["attributes"][key] = attributes.value_of(kinds[key], text, field=target, from_text=True)
    return Row(number, values["phone"].digits, values["phone"].country, values.get("name"),
               list(dict.fromkeys(values["labels"])), values["attributes"])


def _merge_into(first: Row, later: Row) -> None:
    """A later row of the same number: what it gives replaces, its labels add."""
    first.name = later.name or first.name
    first.labels = list(dict.fromkeys(first.labels + later.labels))
    first.attributes.update(later.attributes)
    first.numbers.append(later.number)


def _reason(exc: InvalidRequest) -> str:
    if isinstance(exc.details, dict) and exc.details:
        field_name, reasons = next(iter(exc.details.items()))
        return f"{field_name}: {reasons[0]}"[:ERROR_LENGTH]
    return exc.message[:ERROR_LENGTH]


# A probe of the unique (tenant_id, wa_id) index per number: whatever the planner believes of the tenant's
# row count (a first big import outgrows its statistics), it never filters the tenant's rows by an array.
_LOOKUP = text("SELECT c.wa_id, c.id, c.name, c.attributes FROM unnest(CAST(:keys AS VARCHAR[])) AS k(wa_id) "
               "CROSS JOIN LATERAL (SELECT id, wa_id, name, attributes FROM contacts "
               "WHERE tenant_id = :tenant AND wa_id = k.wa_id) AS c").columns(
    wa_id=String, id=BigInteger, name=String, attributes=JSON)


def _stored(conn, tenant_id: int, rows: dict) -> dict[str, tuple[int, str | None, dict]]:
    """{wa_id: (id, name, attributes)} of the tenant's contacts among the rows' numbers."""
    if not rows:
        return {}
    if conn.dialect.name == "postgresql":
        found = conn.execute(_LOOKUP, {"keys": sorted(rows), "tenant": tenant_id})
    else:
        found = conn.execute(select(Contact.wa_id, Contact.id, Contact.name, Contact.attributes).where(
            Contact.tenant_id == tenant_id, Contact.wa_id.in_(sorted(rows))))
    return {key: (contact_id, name, values or {}) for key, contact_id, name, values in found}


def _insert(conn, run, rows: list[Row]) -> dict[str, int]:
    """Insert the new contacts; {wa_id: id} of those inserted (a number created meanwhile is left out)."""
    if not rows:
        return {}
    now = utcnow()
    inserted = insert_many(conn, Contact.__table__, [
        {"tenant_id": run.tenant_id, "wa_id": row.wa_id, "name": row.name, "country": row.country,
         "attributes": row.attributes, "source": SOURCE_IMPORT, "created_at": now, "updated_at": now}
        for row in rows], returning=("wa_id", "id"), conflict=("tenant_id", "wa_id"))
    return {key: contact_id for key, contact_id in inserted}


def _update(conn, run, pairs) -> dict[int, dict]:
    """Give stored contacts what their rows change; {contact id: {field: [old, new]}} of those changed."""
    changes, params = {}, []
    for (contact_id, name, values), row in pairs:
        after = {**values, **row.attributes}
        changed = {f"attributes.{key}": [values.get(key), value] for key, value in row.attributes.items()
                   if values.get(key) != value}
        if row.name and row.name != name:
            changed["name"] = [name, row.name]
        if changed:
            changes[contact_id] = changed
            params.append({"b_id": contact_id, "b_name": row.name or name, "b_attributes": after})
    if params:
        table = Contact.__table__
        conn.execute(update(table).where(table.c.tenant_id == run.tenant_id, table.c.id == bindparam("b_id"))
                     .values(name=bindparam("b_name"), updated_at=utcnow(),
                             attributes=bindparam("b_attributes", type_=table.c.attributes.type)), params)
    return changes


def _history(conn, run, created: dict[str, int], changes: dict[int, dict], added) -> None:
    """One entry per contact: "created" for a new one; "imported" for a stored one the file changed."""
    detail = {"import_id": run.import_id}
    new_ids = set(created.values())
    labelled: dict[int, list[str]] = {}
    for contact_id, label in added:
        if contact_id not in new_ids:
            labelled.setdefault(contact_id, []).append(label)
    entries = [(contact_id, history.CREATED, detail) for contact_id in created.values()]
    entries += [(contact_id, history.IMPORTED, {**detail, "changes": changes.get(contact_id, {}),
                                                "labels_added": sorted(labelled.get(contact_id, []))})
                for contact_id in sorted(set(changes) | set(labelled))]
    history.record_many(conn, run.tenant_id, entries, source=SOURCE_IMPORT, actor=run.actor)


def _refused(conn, import_id: int, errors) -> None:
    rows = [{"import_id": import_id, "row_number": number, "error": reason[:ERROR_LENGTH],
             "raw": _raw(cells)} for number, reason, cells in errors]
    insert_many(conn, ContactImportError.__table__, rows)


def _raw(cells) -> str | None:
    if cells is None:
        return None
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    text = buffer.getvalue()
    return text if len(text) <= RAW_LENGTH else text[: RAW_LENGTH - 1] + "…"
