"""What happens in messaging that others react to, as domain events (saas.events): each type, the
stream its events are ordered in, and the payload consumers read.

- ``message.received``: an inbound message to a tenant's number. ``object`` is
  WhatsApp's message object as it came; ``contact`` its contacts[] entry; ``from``
  the sender's contact key.
- ``message.status_changed``: a status WhatsApp reported for a message of a
  tenant's number (or the sandbox's receipts, described as WhatsApp would).
  ``object`` is the status object; ``status`` its name. Published for every
  report, whether or not it moved the stored message: a repeated one is
  published again, and consumers deduplicate.
- ``template.changed``: a tenant's copy of a template took Meta's new status,
  quality or category (``field`` names Meta's webhook field), or was deleted.
- ``number.quality_changed``: a number's quality rating or messaging limit
  changed, with what they were.
- ``send.settled``: a send's outcome is final: ``accepted`` by WhatsApp (and
  billed) or ``failed`` (and not billed). A send recovery settled as failed
  that turns out to have gone out after all is settled again, accepted.
- ``contact.preferences_changed``: WhatsApp says a customer stopped or resumed
  marketing messages from a tenant's number. ``value`` is ``stop`` or
  ``resume``; ``category`` Meta's (``marketing_messages``); ``wa_id`` the
  customer; ``source`` what told us: ``user_preferences`` (Meta's webhook
  field of that name; ``detail`` its sentence, ``timestamp`` its seconds
  since the epoch as a string), ``message_status`` (a failed status with
  error 131050, the user stopped marketing; ``wa_message_id`` the message)
  or ``send_refused`` (WhatsApp refused a send with 131050; ``message_id``
  ours). Raised beside the status or the send's settling, so a consumer
  needs neither every status nor every settled send to learn it.

- ``account.updated``: Meta's ``account_update`` webhook for a WhatsApp Business Account a tenant's
  numbers belong to (one event per owning tenant). ``waba_id`` the account; ``event`` Meta's (such as
  ``VOLUME_BASED_PRICING_TIER_UPDATE``); ``value`` the change's value as it came. Ordered per account
  (``<tenant>:account:<waba_id>``).

Messages, statuses, sends and preferences are ordered per conversation, the tenant and the
customer (``<tenant>:contact:<wa_id>``; a status naming no recipient, per
message); templates and numbers each in their own stream. ``number`` (in
message and status payloads) is the tenant's number: id, tenant_id,
phone_number_id, display_number, waba_id.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from saas.events import Event
from saas.messaging.inbound.objects import ident, storable

MESSAGE_RECEIVED = "message.received"
STATUS_CHANGED = "message.status_changed"
TEMPLATE_CHANGED = "template.changed"
NUMBER_QUALITY_CHANGED = "number.quality_changed"
SEND_SETTLED = "send.settled"
PREFERENCES_CHANGED = "contact.preferences_changed"
ACCOUNT_UPDATED = "account.updated"
# WhatsApp's error for a send to a user who stopped marketing messages from the business.
MARKETING_STOPPED = 131050


@dataclass(frozen=True)
class NumberRef:
    """A tenant's number as an event names it."""

    id: int
    tenant_id: int
    phone_number_id: str
    display_number: str
    waba_id: str | None

    @cached_property
    def payload(self) -> dict:
        """As event payloads hold it (built once: a batch names one number in every event)."""
        return {"id": self.id, "tenant_id": self.tenant_id, "phone_number_id": self.phone_number_id,
                "display_number": self.display_number, "waba_id": self.waba_id}

    @property
    def metadata(self) -> dict:
        return {"display_phone_number": "".join(ch for ch in self.display_number if ch.isdigit()),
                "phone_number_id": self.phone_number_id}


def conversation(tenant_id: int, contact: str) -> str:
    """The stream of a tenant's conversation with one customer."""
    return f"{tenant_id}:contact:{contact}"


def _recipient(status: dict) -> str | None:
    for key in ("recipient_id", "recipient_user_id"):
        value = ident(status.get(key), 128)
        if value is not None and storable(value):
            return value
    return None


def message_received(number: NumberRef, wamid: str, sender: str, message: dict, *, contact: dict | None = None,
                     waba_id: str | None = None, metadata: dict | None = None) -> Event:
    return Event(MESSAGE_RECEIVED, number.tenant_id, conversation(number.tenant_id, sender), {
        "number": number.payload, "wa_message_id": wamid, "from": sender, "object": message, "contact": contact,
        "waba_id": waba_id, "metadata": metadata})


def status_changed(number: NumberRef, wamid: str, status: dict, *, waba_id: str | None = None,
                   metadata: dict | None = None) -> Event:
    recipient = _recipient(status)
    stream = conversation(number.tenant_id, recipient) if recipient else f"{number.tenant_id}:message:{wamid}"
    return Event(STATUS_CHANGED, number.tenant_id, stream, {
        "number": number.payload, "wa_message_id": wamid, "status": status.get("status"), "object": status,
        "waba_id": waba_id, "metadata": metadata})


def template_changed(template, field: str, *, deleted: bool = False) -> Event:
    """``template``: a Template row as it is now (or was, when ``deleted``)."""
    return Event(TEMPLATE_CHANGED, template.tenant_id, f"{template.tenant_id}:template:{template.id}", {
        "template_id": template.id, "meta_id": template.meta_id, "waba_id": template.waba_id, "name": template.name,
        "language": template.language, "status": template.status, "category": template.category,
        "quality_score": template.quality_score, "reason": template.reason, "field": field, "deleted": deleted})


def quality_of(number) -> tuple[str | None, str | None]:
    """A PhoneNumber row's quality rating and messaging limit tier, to tell later whether they changed."""
    return number.quality_rating, number.messaging_limit_tier


def number_quality_changed(number, before: tuple[str | None, str | None], *, source: str) -> list[Event]:
    """The event for a PhoneNumber row whose quality or limit is no longer ``before`` (none if unchanged).
    ``source``: what told us (``webhook``, ``check``)."""
    if quality_of(number) == before:
        return []
    return [Event(NUMBER_QUALITY_CHANGED, number.tenant_id, f"{number.tenant_id}:number:{number.id}", {
        "number_id": number.id, "phone_number_id": number.phone_number_id, "display_number": number.display_number,
        "waba_id": number.waba_id, "quality_rating": number.quality_rating,
        "messaging_limit_tier": number.messaging_limit_tier, "previous_quality_rating": before[0],
        "previous_messaging_limit_tier": before[1], "source": source})]


def send_settled(tenant_id: int, message_id: int, wa_id: str, outcome: str, *, wa_message_id: str | None = None,
                 error_code: int | None = None, error_title: str | None = None,
                 category: str | None = None) -> Event:
    """``outcome``: ``accepted`` (went out, billed) or ``failed`` (did not, not billed)."""
    return Event(SEND_SETTLED, tenant_id, conversation(tenant_id, wa_id), {
        "message_id": message_id, "wa_id": wa_id, "outcome": outcome, "wa_message_id": wa_message_id,
        "error_code": error_code, "error_title": error_title, "category": category})


def preferences_changed(number: NumberRef, wa_id: str, value: str, *, source: str, category: str = "marketing_messages",
                        detail: str | None = None, timestamp: str | None = None, wa_message_id: str | None = None,
                        message_id: int | None = None, waba_id: str | None = None) -> Event:
    """A customer stopped (``value`` ``stop``) or resumed (``resume``) marketing from ``number`` (see above)."""
    return Event(PREFERENCES_CHANGED, number.tenant_id, conversation(number.tenant_id, wa_id), {
        "number": number.payload, "wa_id": wa_id, "category": category, "value": value, "source": source,
        "detail": detail, "timestamp": timestamp, "wa_message_id": wa_message_id, "message_id": message_id,
        "waba_id": waba_id})


def account_updated(tenant_id: int, waba_id: str | None, value: dict) -> Event:
    """Meta's ``account_update`` ``value`` for ``waba_id``, for one tenant owning numbers of it (see above)."""
    return Event(ACCOUNT_UPDATED, tenant_id, f"{tenant_id}:account:{waba_id}", {
        "waba_id": waba_id, "event": value.get("event") if isinstance(value.get("event"), str) else None,
        "value": value})
