"""The consent port: whether a marketing template may go to a contact from a number.

Recording consent (opt-ins with proof, opt-outs from keywords, Meta's
user_preferences, error 131050, the API and the portal) is the contacts
room's (saas.contacts.consent), a layer above this one: the send service only
asks, through the collaborator the factory installs, and never imports it.
Without one installed every send is allowed (``AllowEverySend``). What
WhatsApp itself says of a user's consent (error 131050 on a send) becomes a
``contact.preferences_changed`` event here (``marketing_stopped``).

The send service asks only for sends in the ``marketing`` category (a
MARKETING template, or one whose category Meta left unsure): utility and
authentication templates and free-form messages are never checked. It asks
after WhatsApp's rules decided the category and before anything is written,
sent or metered, in the same read-only transaction, once for a single send
and once for a whole batch (one query for all its marketing recipients).
"""
from __future__ import annotations

from datetime import timezone
from typing import Protocol

from sqlalchemy import select

from saas.errors import ApiError
from saas.messaging.domain_events import MARKETING_STOPPED, NumberRef, preferences_changed
from saas.messaging.models import PhoneNumber

MARKETING = "marketing"


class ConsentCheck(Protocol):
    def refusals(self, conn, tenant_id: int, number_id: int, wa_ids: list[str], rights) -> dict[str, ApiError]:
        """The recipients among ``wa_ids`` a marketing template may not go to from the tenant's number
        ``number_id`` (our PhoneNumber id), each with its refusal; read-only in ``conn``. ``rights``
        are the tenant's (saas.billing.entitlements.Entitlements: its plan may leave consent to the tenant)."""


class AllowEverySend:
    """No consent recorded anywhere: nothing is refused."""

    def refusals(self, conn, tenant_id: int, number_id: int, wa_ids: list[str], rights) -> dict[str, ApiError]:
        return {}


def marketing_stopped(conn, tenant_id: int, number_pk: int, wa_id: str, error_code: int | None, *,
                      message_id: int | None = None, at=None) -> list:
    """The ``contact.preferences_changed`` event of a send WhatsApp refused with 131050 (the user stopped
    marketing messages from the business), to publish with its settling; none for any other code."""
    if error_code != MARKETING_STOPPED:
        return []
    row = conn.execute(select(PhoneNumber.id, PhoneNumber.tenant_id, PhoneNumber.phone_number_id,
                              PhoneNumber.display_number, PhoneNumber.waba_id)
                       .where(PhoneNumber.id == number_pk, PhoneNumber.tenant_id == tenant_id)).first()
    if row is None:
        return []
    timestamp = str(int(at.replace(tzinfo=timezone.utc).timestamp())) if at is not None else None
    return [preferences_changed(NumberRef(*row), wa_id, "stop", source="send_refused", message_id=message_id,
                                timestamp=timestamp, detail="WhatsApp refused a marketing send with error 131050: "
                                                            "the user stopped marketing messages.")]
