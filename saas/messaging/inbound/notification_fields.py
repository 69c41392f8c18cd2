"""What each field of WhatsApp's webhook notifications does when it is applied.

A handler is ``handler(batch, note, waba_id, field, value)``: it reads one
change's value defensively and adds what it means to the batch (statuses,
inbound messages, the domain events they raise) or changes rows through the
ORM, in the batch's transaction. An item it cannot use is refused on the note, with why:
it is kept (saas.messaging.inbound.unapplied), never dropped. The batch is written by
saas.messaging.inbound.notification_items.
"""
from __future__ import annotations

from saas.audit import services as audit
from saas.messaging import domain_events as happened
from saas.messaging.outbound import callback_data
from saas.messaging.inbound import objects as inbound
from saas.messaging.numbers import media
from saas.messaging.inbound.objects import ident, items, obj, storable, text
from saas.messaging.inbound.statuses import TIMESTAMP_FIELD, StatusUpdate

# How long a status name may be (the forwarding ledger keeps 40 characters of it).
STATUS_NAME_LENGTH = 40


def _listed(note, waba_id: str, field_name: str, value: dict, key: str):
    """(index, item) of each object listed under ``key``; a non-list, or an item that is no object, is refused."""
    listed = value.get(key)
    if listed is None:
        return
    if not isinstance(listed, list):
        note.refuse(waba_id, field_name, value, key, None, listed, f"{key} is not a list")
        return
    for index, item in enumerate(listed):
        if isinstance(item, dict):
            yield index, item
        else:
            note.refuse(waba_id, field_name, value, key, index, item, "not a JSON object")


def status_update(number, wamid: str, name: str, status: dict, now) -> StatusUpdate:
    """A status object of one of our numbers as the status to apply to our message."""
    error = inbound.first_error(status) if name == "failed" else {}
    return StatusUpdate(
        number.tenant_id, wamid, name, inbound.moment(status.get("timestamp"), now),
        error_code=error.get("code"), error_title=error.get("title"), error_details=error.get("details"),
        sent_as=callback_data.message_id(status.get(callback_data.FIELD)), **inbound.charge(status))


def _status_refused(wamid: str | None, name) -> str | None:
    """Why a status object names no status of a message we could look up, or None."""
    if wamid is None:
        return "no usable id (a string of at most 128 characters)"
    if not isinstance(name, str) or ident(name, STATUS_NAME_LENGTH) is None:
        return "no usable status name"
    return None


def _message_refused(wamid: str | None, kind, keys: list[str]) -> str | None:
    """Why an inbound message cannot be stored, or None."""
    if wamid is None:
        return "no usable id (a string of at most 128 characters)"
    if not keys:
        return "no usable sender (from, from_user_id or the contact's wa_id: at most 64 characters)"
    if isinstance(kind, str) and not storable(kind):
        return "its type holds characters no database stores"
    return None


def apply_messages(batch, note, waba_id: str, field_name: str, value: dict) -> None:
    """Statuses and inbound messages of one of our numbers (``messages`` field)."""
    metadata = obj(value.get("metadata"))
    phone_number_id = ident(metadata.get("phone_number_id"), 64)
    number = batch.numbers.get(phone_number_id)
    if number is None:
        note.unknown_numbers.add(phone_number_id or "(none)")
        return
    for index, status in _listed(note, waba_id, field_name, value, "statuses"):
        wamid, name = ident(status.get("id"), 128), status.get("status")
        why = _status_refused(wamid, name)
        if why is not None:
            note.refuse(waba_id, field_name, value, "statuses", index, status, why)
            continue
        # Published whatever the status (and so forwarded): the tenant may know what we do not.
        batch.events.append(happened.status_changed(number, wamid, status, waba_id=waba_id, metadata=metadata))
        batch.events.extend(_marketing_stopped(number, wamid, name, status, waba_id))
        if name not in TIMESTAMP_FIELD:
            note.refuse(waba_id, field_name, value, "statuses", index, status,
                        f"status {name!r} is not one a message takes (forwarded, not applied)")
            continue
        batch.statuses.append(status_update(number, wamid, name, status, batch.now))
        note.counts["statuses"] += 1
    contacts = items(value.get("contacts"))
    for index, message in _listed(note, waba_id, field_name, value, "messages"):
        wamid, kind = ident(message.get("id"), 128), message.get("type")
        contact = inbound.contact_for(message, contacts)
        keys = inbound.contact_keys(message, contact)
        why = _message_refused(wamid, kind, keys)
        if why is not None:
            note.refuse(waba_id, field_name, value, "messages", index, message, why)
            continue
        sent_at = inbound.moment(message.get("timestamp"), batch.now)
        batch.messages.append({
            "tenant_id": number.tenant_id, "phone_number_id": number.id, "direction": "in", "wa_id": keys[0],
            "type": text(kind, 30) or "unknown", "body_summary": inbound.summarise(message),
            "wa_message_id": wamid, "status": "received", "raw_message": message, "conversation_id": None,
            "opened_conversation": False, "created_at": batch.now, "updated_at": batch.now})
        batch.media.extend(media.inbound_rows(number.tenant_id, number.id, message, batch.now))
        if kind != "system":  # a number change is not the user writing
            batch.windows.extend((number.tenant_id, number.id, key, sent_at) for key in keys)
        batch.events.append(happened.message_received(number, wamid, keys[0], message, contact=contact or None,
                                                      waba_id=waba_id, metadata=metadata))
        note.counts["messages"] += 1
    if items(value.get("errors")):
        note.counts["errors"] += len(items(value.get("errors")))


def _marketing_stopped(number, wamid: str, name, status: dict, waba_id: str) -> list:
    """A failed status with error 131050 says its recipient stopped marketing messages from the number."""
    if name != "failed" or inbound.first_error(status).get("code") != happened.MARKETING_STOPPED:
        return []
    recipient = ident(status.get("recipient_id"), 64)
    if recipient is None:
        return []
    return [happened.preferences_changed(number, recipient, "stop", source="message_status", wa_message_id=wamid,
                                         timestamp=text(status.get("timestamp"), 20), waba_id=waba_id,
                                         detail=text(inbound.first_error(status).get("title"), 300))]


# What Meta's user_preferences webhook may say of a category, and the values we apply.
PREFERENCE_VALUES = ("stop", "resume")


def apply_user_preferences(batch, note, waba_id: str, field_name: str, value: dict) -> None:
    """Users who stopped or resumed marketing messages from one of our numbers (``user_preferences``): each
    becomes a ``contact.preferences_changed`` event (consent is recorded by its consumer)."""
    metadata = obj(value.get("metadata"))
    phone_number_id = ident(metadata.get("phone_number_id"), 64)
    number = batch.numbers.get(phone_number_id)
    if number is None:
        note.unknown_numbers.add(phone_number_id or "(none)")
        return
    for index, item in _listed(note, waba_id, field_name, value, "user_preferences"):
        wa_id, category, said = ident(item.get("wa_id"), 64), item.get("category"), item.get("value")
        if wa_id is None:
            why = "no usable wa_id (a string of at most 64 characters)"
        elif category != "marketing_messages":
            why = f"category {text(category, 40)!r} is not one consent follows (kept, not applied)"
        elif said not in PREFERENCE_VALUES:
            why = f"value {text(said, 40)!r} is neither stop nor resume"
        else:
            batch.events.append(happened.preferences_changed(
                number, wa_id, said, source="user_preferences", detail=text(item.get("detail"), 300),
                timestamp=text(item.get("timestamp"), 20), waba_id=waba_id))
            note.counts["user preferences"] += 1
            continue
        note.refuse(waba_id, field_name, value, "user_preferences", index, item, why)


def _digits(value) -> str:
    return "".join(ch for ch in str(value or "") if ch.isascii() and ch.isdigit())


# Meta's webhook says a number was flagged (its quality fell to low) or unflagged (no longer low).
QUALITY_FOR_EVENT = {"FLAGGED": "RED", "UNFLAGGED": "GREEN"}


def apply_quality_update(batch, note, waba_id: str, field_name: str, value: dict) -> None:
    """A number's quality and messaging limit (``phone_number_quality_update``)."""
    display = _digits(value.get("display_phone_number"))
    numbers = [n for n in batch.numbers_of_account(waba_id) if display and _digits(n.display_number) == display]
    if not numbers:
        note.unknown_numbers.add(display or "(none)")
        return
    event = text(value.get("event"), 40)
    limit = text(value.get("max_daily_conversations_per_business") or value.get("current_limit"), 30)
    quality = QUALITY_FOR_EVENT.get(event or "")
    for number in numbers:
        before = happened.quality_of(number)
        if quality is not None:
            number.quality_rating = quality
        if limit is not None:
            number.messaging_limit_tier = limit
        batch.events.extend(happened.number_quality_changed(number, before, source="webhook"))
        audit.record("whatsapp", "whatsapp.quality_update",
                     f"Number {number.display_number}: {event or 'update'}"
                     + (f", quality {quality}" if quality else "") + (f", limit {limit}" if limit else ""),
                     tenant_id=number.tenant_id, waba_id=waba_id, value=value)
    note.counts["quality updates"] += 1


def record_account_event(batch, note, waba_id: str, field_name: str, value: dict) -> None:
    """An account event (``account_update``, ``account_review_update``) in each owning tenant's audit log."""
    tenants = sorted({n.tenant_id for n in batch.numbers_of_account(waba_id)})
    if not tenants:
        note.unknown_accounts.add(waba_id or "(none)")
        return
    what = text(value.get("event") or value.get("decision"), 100) or "update"
    for tenant_id in tenants:
        if field_name == "account_update":
            batch.events.append(happened.account_updated(tenant_id, waba_id, value))
        audit.record("whatsapp", f"whatsapp.{field_name}"[:60],
                     f"WhatsApp Business account {waba_id}: {field_name.replace('_', ' ')} {what}",
                     tenant_id=tenant_id, waba_id=waba_id, value=value)
    note.counts[field_name] += 1


def apply_template_update(batch, note, waba_id, field_name, value) -> None:
    """A template's status, quality or category changed at Meta: every tenant's copy of it follows."""
    from saas.messaging.templates.updates import apply_template_change

    apply_template_change(waba_id, field_name, value)
    note.counts[field_name] += 1


# The handler for each webhook field: handler(batch, note, waba_id, field, value), in the
# batch's transaction. None: the field is stored (in the notification) with no handler yet.
FIELD_HANDLERS = {
    "messages": apply_messages,
    "phone_number_quality_update": apply_quality_update,
    "account_update": record_account_event,
    "account_review_update": record_account_event,
    "message_template_status_update": apply_template_update,
    "message_template_quality_update": apply_template_update,
    "template_category_update": apply_template_update,
    "user_preferences": apply_user_preferences,
}

# The fields whose value names one of our numbers in ``metadata.phone_number_id``.
NUMBER_FIELDS = ("messages", "user_preferences")
