"""JSON shapes of the API's resources."""
from __future__ import annotations

from flask import url_for

from saas.timeutil import iso


def message_json(message) -> dict:
    return {
        "id": message.id,
        "object": "message",
        "direction": message.direction,
        "phone_number_id": message.phone_number.phone_number_id,
        "wa_id": message.wa_id,
        "type": message.type,
        "summary": message.body_summary,
        "wa_message_id": message.wa_message_id,
        "status": message.status,
        # A template send's status as WhatsApp gave it: accepted, held_for_quality_assessment, paused.
        "message_status": message.message_status,
        "error": ({"code": message.error_code, "title": message.error_title, "details": message.error_details}
                  if message.error_code is not None else None),
        "conversation_id": message.conversation_id,
        "created_at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
        "delivered_at": iso(message.delivered_at),
        "read_at": iso(message.read_at),
        "failed_at": iso(message.failed_at),
    }


def number_json(number) -> dict:
    return {
        "object": "phone_number",
        "phone_number_id": number.phone_number_id,
        "display_phone_number": number.display_number,
        "verified_name": number.verified_name,
        "mode": number.mode,
        "waba_id": number.waba_id,
        # What the Graph API said at the last check (null for sandbox numbers). Never the token.
        "quality_rating": number.quality_rating,
        "messaging_limit_tier": number.messaging_limit_tier,
        "last_checked_at": iso(number.last_checked_at),
        "created_at": iso(number.created_at),
    }


def contact_json(contact, labels: list[str]) -> dict:
    return {
        "id": contact.id,
        "object": "contact",
        "wa_id": contact.wa_id,
        "user_id": contact.user_id,
        "name": contact.name,
        "country": contact.country,
        "attributes": contact.attributes or {},
        "labels": labels,
        "source": contact.source,
        "last_inbound_at": iso(contact.last_inbound_at),
        "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
    }


def attribute_json(definition) -> dict:
    return {"object": "contact_attribute", "key": definition.key, "type": definition.type,
            "created_at": iso(definition.created_at)}


def import_json(row) -> dict:
    """A CSV import and its progress (the counts grow batch by batch while it runs)."""
    return {
        "id": row.id,
        "object": "contact_import",
        "status": row.status,
        "filename": row.filename,
        "mapping": row.mapping or {},
        "total_rows": row.total_rows,
        "processed_rows": row.processed_rows,
        "created": row.created_count,
        "merged": row.merged_count,
        "failed": row.failed_count,
        "error": row.error,
        "opt_in": row.opt_in,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
        "errors_url": url_for("api.import_errors", import_id=row.id),
    }
