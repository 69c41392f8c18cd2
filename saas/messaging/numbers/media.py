"""WhatsApp media through us: upload, read, download and delete a media id, scoped to its tenant.

Media ids are Meta's. A ``Media`` row (written when a tenant uploads, or when
an inbound message carries one) is what makes an id a tenant's: an id without
a live row of this tenant answers exactly like one that does not exist, so no
tenant can probe another's. Every call to Graph uses the token of the number
the media belongs to. Graph's refusals reach the tenant as UpstreamError
(Meta's code, subcode, details, fbtrace_id), a timeout as UpstreamTimeout.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, update

from saas.errors import LiveNumberRequired, NotFound, PayloadTooLarge, UpstreamError
from saas.extensions import db
from saas.messaging.numbers.graph import GraphError
from saas.messaging.inbound.objects import ident, obj, text
from saas.messaging.models import MODE_LIVE, Media, PhoneNumber
from saas.messaging.numbers.profile import access_token
from saas.messaging.numbers.phone_numbers import sending_number
from saas.database import insert_for
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

# Meta's media ids are digits; anything else names no media (and never reaches the database).
MEDIA_ID = re.compile(r"^[0-9]{1,64}$")
# Inbound message types whose object carries a media id.
INBOUND_KINDS = ("image", "document", "audio", "video", "sticker")
MIME_LENGTH = 255


def unknown_object(object_id, method: str = "get") -> NotFound:
    """Graph's answer for an id that does not exist, or that this caller may not see (the same words)."""
    shown = str(object_id)[:64].replace("\x00", "")
    return NotFound(f"Unsupported {method} request. Object with ID '{shown}' does not exist, cannot be loaded "
                    "due to missing permissions, or does not support this operation.")


@dataclass(frozen=True)
class Upload:
    """A file to upload, read from ``stream`` (``size`` bytes)."""

    stream: object
    size: int
    filename: str
    mime_type: str


@dataclass(frozen=True)
class MediaRef:
    """A media id of the tenant and what calling Graph for it needs."""

    media_id: str
    number_pk: int
    phone_number_id: str
    token: str


def _token(number_mode: str, ciphertext: str | None) -> str:
    if number_mode != MODE_LIVE:
        raise LiveNumberRequired("Media needs a connected live number: sandbox numbers never reach WhatsApp, "
                                 "so they have no media to upload or fetch.")
    return access_token(ciphertext)


def upload_number(tenant, rights, phone_number_id: str):
    """The number an upload goes from, once the plan allows media. Raises NotFound, FeatureNotInPlan,
    PaymentRequired, LiveNumberRequired (a sandbox number: nothing is stored)."""
    number = sending_number(tenant, phone_number_id)
    rights.require("media", "media uploads")
    _token(number.mode, number.access_token_encrypted)
    return number


def upload(graph, tenant, number, file: Upload) -> dict:
    """Upload ``file`` to WhatsApp from ``number`` (see upload_number) and record the media id as the tenant's.

    Never retried (an upload is not idempotent). Returns Meta's answer
    (``{"id": ...}``). Raises PayloadTooLarge past MEDIA_MAX_BYTES,
    UpstreamError/UpstreamTimeout when Graph refuses or fails. Commits.
    """
    if file.size > current_app.config["MEDIA_MAX_BYTES"]:
        raise PayloadTooLarge(f"The file is larger than this server's {current_app.config['MEDIA_MAX_BYTES']} "
                              "bytes for media.")
    token = _token(number.mode, number.access_token_encrypted)
    try:
        answer = graph.upload(graph.url(number.phone_number_id, "media"), token,
                              {"messaging_product": "whatsapp", "type": file.mime_type}, "file", file.filename,
                              file.mime_type, file.stream, file.size)
    except GraphError as exc:
        raise exc.as_upstream() from None
    media_id = ident(answer.get("id"), 128)
    if media_id is None:
        raise UpstreamError("WhatsApp answered the upload without a media id.", details={"whatsapp_code": None})
    record(db.session.connection(), [{"media_id": media_id, "tenant_id": tenant.id, "phone_number_id": number.id,
                                      "origin": "upload", "mime_type": file.mime_type, "created_at": utcnow()}])
    db.session.commit()
    return {"id": media_id}


def record(conn, rows: list[dict]) -> None:
    """Insert Media rows; an id already recorded is left as it is (a webhook applied twice records once)."""
    if rows:
        conn.execute(insert_for(conn, Media).on_conflict_do_nothing(index_elements=["media_id"]),
                     sorted(rows, key=lambda row: row["media_id"]))


def inbound_rows(tenant_id: int, number_pk: int, message: dict, now) -> list[dict]:
    """The Media row an inbound message's media object asks for (none for other messages)."""
    kind = message.get("type")
    if kind not in INBOUND_KINDS:
        return []
    body = obj(message.get(kind))
    media_id = ident(body.get("id"), 128)
    if media_id is None:
        return []
    return [{"media_id": media_id, "tenant_id": tenant_id, "phone_number_id": number_pk, "origin": "inbound",
             "mime_type": text(body.get("mime_type"), MIME_LENGTH), "created_at": now}]


def owned(tenant, media_id, *, phone_number_id: str | None = None, method: str = "get") -> MediaRef:
    """The tenant's media ``media_id`` (not deleted), of its number ``phone_number_id`` when one is given.

    NotFound (Graph's unknown-object answer) for anything else: another
    tenant's id, a deleted one, a malformed one. LiveNumberRequired when it
    belongs to a sandbox number. Ends its read transaction before returning.
    """
    media_id = str(media_id)
    if not MEDIA_ID.match(media_id):
        raise unknown_object(media_id, method)
    try:
        row = db.session.execute(
            select(Media.media_id, PhoneNumber.id, PhoneNumber.phone_number_id, PhoneNumber.mode,
                   PhoneNumber.access_token_encrypted)
            .join(PhoneNumber, (PhoneNumber.id == Media.phone_number_id) & (PhoneNumber.tenant_id == Media.tenant_id))
            .where(Media.media_id == media_id, Media.tenant_id == tenant.id, Media.deleted_at.is_(None),
                   PhoneNumber.disconnected_at.is_(None))).first()
    finally:
        db.session.rollback()  # no connection held while Graph is called
    if row is None:
        raise unknown_object(media_id, method)
    if phone_number_id is not None and str(phone_number_id) != row.phone_number_id:
        try:
            sending_number(tenant, phone_number_id)
        except NotFound:
            raise unknown_object(phone_number_id, method) from None
        raise unknown_object(media_id, method)
    return MediaRef(row.media_id, row.id, row.phone_number_id, _token(row.mode, row.access_token_encrypted))


def info(graph, ref: MediaRef, *, phone_number_id: str | None = None) -> dict:
    """Meta's answer for the media (url, mime_type, sha256, file_size, id); GET, retried when Graph is busy."""
    params = {"phone_number_id": phone_number_id} if phone_number_id else None
    try:
        return graph.get(graph.url(ref.media_id), ref.token, params=params)
    except GraphError as exc:
        raise exc.as_upstream() from None


def open_content(graph, ref: MediaRef):
    """The media's bytes as an open streamed response (the caller closes it) and their Content-Type.

    Reads a fresh URL from Graph (Meta's expire after minutes), then GETs it
    with the number's token. UpstreamError when the URL is not one a token may
    go to, or the media is larger than MEDIA_MAX_BYTES.
    """
    url = info(graph, ref).get("url")
    if not graph.may_fetch_media(url):
        raise UpstreamError("WhatsApp answered without a media URL we may fetch.", details={"whatsapp_code": None})
    try:
        response = graph.stream(url, ref.token)
    except GraphError as exc:
        raise exc.as_upstream() from None
    limit = current_app.config["MEDIA_MAX_BYTES"]
    length = response.headers.get("Content-Length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        response.close()
        raise UpstreamError(f"The media is larger than this server's {limit} bytes for media.",
                            details={"whatsapp_code": None, "size": length[:20]})
    return response


def capped_chunks(upstream, limit: int, media_id: str, chunk_size: int = 64 * 1024):
    """A media download's body from Graph, in chunks, cut at ``limit`` bytes (MEDIA_MAX_BYTES); the upstream
    response is closed however the reader stops."""
    sent = 0
    try:
        for chunk in upstream.iter_content(chunk_size):
            sent += len(chunk)
            if sent > limit:
                log.warning("media download cut at MEDIA_MAX_BYTES", extra={"media_id": media_id})
                return
            yield chunk
    finally:
        upstream.close()


def delete(graph, tenant, ref: MediaRef, *, phone_number_id: str | None = None) -> dict:
    """Delete the media at WhatsApp, then mark it deleted here. Retried when Graph is busy. Commits."""
    params = {"phone_number_id": phone_number_id} if phone_number_id else None
    try:
        answer = graph.delete(graph.url(ref.media_id), ref.token, params=params)
    except GraphError as exc:
        raise exc.as_upstream() from None
    db.session.execute(update(Media).where(Media.media_id == ref.media_id, Media.tenant_id == tenant.id,
                                           Media.deleted_at.is_(None)).values(deleted_at=utcnow()))
    db.session.commit()
    return answer
