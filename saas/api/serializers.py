"""JSON shapes of the API's resources."""
from __future__ import annotations

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
