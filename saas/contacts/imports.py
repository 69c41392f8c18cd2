"""CSV imports of contacts: receiving a file, its column mapping, queueing its job, its progress.

A file is checked whole when it arrives (size, UTF-8, no NUL, CSV that parses, a header of distinct
names) and its rows counted, so what is wrong with it is said at once; then it is stored as it came and
read row by row by the job (saas.contacts.import_job) in batches. The mapping names, for each CSV column, the
field it fills: ``wa_id`` (required, exactly one column), ``name``, ``labels`` (labels separated by ; or |),
``attr:<key>`` (a defined attribute) or "" (skipped). Without one the columns are mapped by their names.
"""
from __future__ import annotations

import codecs
import csv
import io
import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select

from saas import jobs
from saas.contacts import attributes
from saas.contacts.models import ContactImport
from saas.contacts.values import FieldProblem
from saas.errors import NotFound, PayloadTooLarge
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import sending_number
from saas.tenants.scoping import get_owned
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

JOB = "saas.contacts.import_job.run"
# States: waiting for its mapping (the portal's second step), waiting for a worker, being read, ended.
UPLOADED, QUEUED, RUNNING, DONE, FAILED = "uploaded", "queued", "running", "done", "failed"
MAX_COLUMNS = 200
DELIMITERS = (",", ";", "\t", "|")
FIELDS = ("wa_id", "name", "labels")
PROOF_LENGTH = 1000
# Column names understood without a mapping (compared lowercase, spaces and dashes as underscores).
KNOWN_NAMES = {
    "wa_id": "wa_id", "whatsapp": "wa_id", "whatsapp_number": "wa_id", "phone": "wa_id", "phone_number": "wa_id",
    "number": "wa_id", "mobile": "wa_id", "telefon": "wa_id", "gsm": "wa_id", "name": "name", "full_name": "name",
    "ad_soyad": "name", "isim": "name", "labels": "labels", "label": "labels", "tags": "labels", "etiket": "labels",
    "etiketler": "labels",
}
# A queued import no worker took within this long (its job lost with a process) is queued again.
QUEUED_GRACE = timedelta(minutes=2)


def scan(content: bytes, limit: int) -> tuple[list[str], int, str]:
    """The file's header, how many rows follow it (blank lines not counted) and its delimiter; FieldProblem
    ("file") saying what is wrong with it, PayloadTooLarge past ``limit`` bytes."""
    if len(content) > limit:
        raise PayloadTooLarge(f"The file is larger than {limit:,} bytes (CONTACT_IMPORT_MAX_BYTES): split it.")
    if not content.strip():
        raise FieldProblem("file", "The file is empty.")
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FieldProblem("file", "The file is UTF-16 text: save it from your spreadsheet as “CSV UTF-8”.")
    if b"\x00" in content:
        raise FieldProblem("file", "The file holds NUL bytes: it is not a CSV text file.")
    delimiter = delimiter_of(content)
    reader = rows_of(content, delimiter)
    try:
        header = next(reader, [])
        count = sum(1 for row in reader if row)
    except UnicodeDecodeError:
        raise FieldProblem("file", "The file is not UTF-8 text: save it from your spreadsheet as “CSV UTF-8”.") \
            from None
    except csv.Error as exc:
        raise FieldProblem("file", f"Row {reader.line_num} is not valid CSV ({exc}); is a quote left open?") \
            from None
    return checked_header(header), count, delimiter


def rows_of(content: bytes, delimiter: str):
    """A csv reader over the stored bytes, decoded as it reads (a byte order mark is skipped)."""
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")
    return csv.reader(text, delimiter=delimiter, strict=True)


def delimiter_of(content: bytes) -> str:
    """The delimiter the header line uses most (Excel writes ; where the decimal mark is a comma)."""
    first = content[:65536].split(b"\n", 1)[0].decode("utf-8", "replace")
    counts = {delimiter: first.count(delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def checked_header(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    if not any(names):
        raise FieldProblem("file", "The first row must name the columns (such as wa_id,name,labels).")
    if len(names) > MAX_COLUMNS:
        raise FieldProblem("file", f"At most {MAX_COLUMNS} columns.")
    seen = set()
    for name in names:
        if len(name) > 100:
            raise FieldProblem("file", "A column name is longer than 100 characters.")
        if name and name in seen:
            raise FieldProblem("file", f"The column {name!r} appears twice: column names must be distinct.")
        seen.add(name)
    return names


def guess_mapping(header: list[str], kinds: dict[str, str]) -> dict[str, str]:
    """A mapping from the columns' names: known names, ``attr:<key>`` and defined attribute keys."""
    mapping, taken = {}, set()
    for name in header:
        plain = name.lower().replace(" ", "_").replace("-", "_")
        field = KNOWN_NAMES.get(plain)
        if field is None and plain.startswith("attr:") and plain[5:] in kinds:
            field = plain
        elif field is None and plain in kinds:
            field = f"attr:{plain}"
        if name and field and (field == "labels" or field not in taken):
            mapping[name] = field
            taken.add(field)
    return mapping


def checked_mapping(header: list[str], mapping, kinds: dict[str, str]) -> dict[str, str]:
    """``mapping`` as the job reads it (skipped columns left out); FieldProblem("mapping") saying what is
    wrong: a column the file does not have, an unknown field or attribute, no or two wa_id columns."""
    if not isinstance(mapping, dict):
        raise FieldProblem("mapping", "A JSON object: CSV column -> wa_id, name, labels, attr:<key> or \"\".")
    result, counts = {}, {}
    for column, field in mapping.items():
        if column not in header:
            raise FieldProblem("mapping", f"The file has no column {str(column)[:100]!r}.")
        if field in ("", None):
            continue
        if not isinstance(field, str) or not (field in FIELDS or (field.startswith("attr:") and field[5:] in kinds)):
            raise FieldProblem("mapping", f"Column {column!r}: {str(field)[:60]!r} is not wa_id, name, labels or "
                                          "attr:<key> of a defined attribute.")
        counts[field] = counts.get(field, 0) + 1
        if field != "labels" and counts[field] > 1:
            raise FieldProblem("mapping", f"Two columns fill {field}: map one of them.")
        result[column] = field
    if "wa_id" not in counts:
        raise FieldProblem("mapping", "Map one column to wa_id (the WhatsApp number with its country code).")
    return result


def receive(tenant, *, filename: str, content: bytes, limit: int, mapping=None, auto_map: bool = True,
            opt_in: bool = False, proof: str | None = None, phone_number_id: str | None = None,
            actor: str | None = None) -> ContactImport:
    """Check and store an uploaded CSV. Commits.

    With a mapping (or ``auto_map`` and columns named well enough to find wa_id) it is queued at once;
    without, it waits for ``map_columns`` (the portal's second step). ``opt_in``: the contacts are recorded
    as opted in to ``phone_number_id`` (one of the tenant's numbers) with ``proof`` (what they agreed to).
    FieldProblem names what is wrong (``file``, ``mapping``, ``phone_number_id``, ``consent_proof``).
    """
    header, total, _ = scan(content, limit)
    number_id = _opt_in_number(tenant, opt_in, proof, phone_number_id)
    kinds = attributes.definitions(tenant.id)
    if mapping is None and auto_map:
        mapping = guess_mapping(header, kinds)
    checked = checked_mapping(header, mapping, kinds) if mapping is not None else None
    row = ContactImport(tenant_id=tenant.id, filename=(filename or "contacts.csv")[:200], content=content,
                        mapping=checked or {}, opt_in=bool(opt_in), consent_proof=proof if opt_in else None,
                        phone_number_id=number_id, status=QUEUED if checked else UPLOADED, total_rows=total,
                        created_by=(actor or "")[:200] or None, created_at=utcnow())
    db.session.add(row)
    db.session.commit()
    if checked:
        start(row.id)
    return row


def _opt_in_number(tenant, opt_in: bool, proof, phone_number_id) -> int | None:
    if not opt_in:
        return None
    if not phone_number_id:
        raise FieldProblem("phone_number_id", "Say which of your numbers the contacts opted in to.")
    try:
        number = sending_number(tenant, str(phone_number_id))
    except NotFound:
        raise FieldProblem("phone_number_id", "Not one of your numbers (GET /api/v1/numbers lists them).") from None
    if not isinstance(proof, str) or not proof.strip() or len(proof) > PROOF_LENGTH or "\x00" in proof:
        raise FieldProblem("consent_proof", f"What the contacts agreed to and where (1 to {PROOF_LENGTH} "
                                            "characters), such as the sign-up form's wording.")
    return number.id


def header_of(row: ContactImport) -> list[str]:
    """The stored file's column names (read again from its first row)."""
    content = db.session.scalar(select(ContactImport.content).where(ContactImport.id == row.id))
    if content is None:
        return []
    return checked_header(next(rows_of(content, delimiter_of(content)), []))


def map_columns(tenant, import_id, mapping) -> ContactImport:
    """Give an uploaded import its column mapping and queue it. Commits. NotFound; FieldProblem("mapping")."""
    row = get(tenant, import_id)
    if row.status != UPLOADED:
        raise FieldProblem("mapping", "This import has its mapping already.")
    row.mapping = checked_mapping(header_of(row), mapping, attributes.definitions(tenant.id))
    row.status = QUEUED
    db.session.commit()
    start(row.id)
    return row


def start(import_id: int) -> None:
    """Hand the import to a worker: its own RQ job (put on Redis before this returns), or without Redis this
    process's background thread. A job lost with its process is picked up by ``resume_stalled``."""
    if not jobs.queue_now(JOB, import_id, retry_waits=[10, 60]):
        jobs.enqueue(JOB, import_id)


def get(tenant, import_id) -> ContactImport:
    """The tenant's import with this id; NotFound for another tenant's, as for none."""
    return get_owned(ContactImport, import_id, tenant, what="import")


def recent(tenant, limit: int = 10) -> list[ContactImport]:
    return list(db.session.scalars(select(ContactImport).where(ContactImport.tenant_id == tenant.id)
                                   .order_by(ContactImport.id.desc()).limit(limit)))


def resume_stalled(now=None) -> int:
    """Queue again the imports whose job was lost (queued for QUEUED_GRACE) or whose worker died (running,
    its lease over); how many. Every process's housekeeping runs it; a second job of one import finds it
    claimed, or done, and does nothing."""
    now = now or utcnow()
    ids = list(db.session.scalars(select(ContactImport.id).where(or_(
        and_(ContactImport.status == QUEUED, ContactImport.created_at < now - QUEUED_GRACE),
        and_(ContactImport.status == RUNNING, ContactImport.lease_until < now))).limit(20)))
    db.session.rollback()
    for import_id in ids:
        log.warning("contact import %s stalled; queued again", import_id)
        start(import_id)
    return len(ids)
