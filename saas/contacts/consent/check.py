"""The send service's consent check (saas.messaging.outbound.consent.ConsentCheck), read from recorded consent.

A marketing template goes to a contact only with an opt-in recorded for the sending number; after
an opt-out it is refused (OptedOut), and without any record too (ConsentRequired), unless the
tenant's plan says the tenant manages consent itself (``consent_managed_by_tenant``): then only an
opt-out refuses. The plan in force decides (``rights.effective``), as it does every right.
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, select

from saas.contacts.models import OPTED_IN, OPTED_OUT, Consent, Contact
from saas.errors import ApiError, ConsentRequired, OptedOut

# The recipients' consent for one number: contacts by (tenant_id, wa_id), then their consent by
# (contact_id, phone_number_id); both unique keys, so one index lookup each.
_STATES = (select(Contact.wa_id, Contact.id, Consent.state)
           .outerjoin(Consent, and_(Consent.contact_id == Contact.id, Consent.tenant_id == Contact.tenant_id,
                                    Consent.phone_number_id == bindparam("number_id")))
           .where(Contact.tenant_id == bindparam("tenant_id"), Contact.wa_id.in_(bindparam("wa_ids", expanding=True))))
_ONE_STATE = (select(Contact.wa_id, Contact.id, Consent.state)
              .outerjoin(Consent, and_(Consent.contact_id == Contact.id, Consent.tenant_id == Contact.tenant_id,
                                       Consent.phone_number_id == bindparam("number_id")))
              .where(Contact.tenant_id == bindparam("tenant_id"), Contact.wa_id == bindparam("wa_id")))
PART = 1000


class RecordedConsent:
    """Refuses marketing templates by the consent the contacts room recorded (installed by the app factory)."""

    def refusals(self, conn, tenant_id: int, number_id: int, wa_ids: list[str], rights) -> dict[str, ApiError]:
        """The recipients among ``wa_ids`` refused (see the module), each with its refusal. One query for up
        to PART recipients; read-only."""
        if not wa_ids:
            return {}
        states = {}
        params = {"tenant_id": tenant_id, "number_id": number_id}
        if len(wa_ids) == 1:
            row = conn.execute(_ONE_STATE, {**params, "wa_id": wa_ids[0]}).first()
            states = {row.wa_id: (row.id, row.state)} if row is not None else {}
        else:
            for start in range(0, len(wa_ids), PART):
                states.update((row.wa_id, (row.id, row.state)) for row in conn.execute(
                    _STATES, {**params, "wa_ids": wa_ids[start:start + PART]}))
        managed = rights.effective.consent_managed_by_tenant
        refused = {}
        for wa_id in wa_ids:
            contact_id, state = states.get(wa_id, (None, None))
            if state == OPTED_OUT:
                refused[wa_id] = OptedOut(details={"contact": wa_id, "contact_id": contact_id,
                                                   "state": OPTED_OUT})
            elif state != OPTED_IN and not managed:
                refused[wa_id] = ConsentRequired(details={"contact": wa_id, "contact_id": contact_id,
                                                          "state": state})
        return refused
