"""A tenant's WhatsApp phone numbers: the sandbox one every tenant gets, and live ones."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from saas import cache
from saas.errors import NotFound
from saas.extensions import db
from saas.messaging.models import MODE_SANDBOX, PhoneNumber
from saas.text import fit

# A sandbox number's messaging limit: a new live number's.
SANDBOX_MESSAGING_LIMIT_TIER = "TIER_250"
from saas.tenants.scoping import owned_query


def _new_phone_number_id() -> str:
    # Meta's phone number ids are 15-16 digit integers; sandbox ones look the same.
    while True:
        candidate = "9" + "".join(secrets.choice("0123456789") for _ in range(14))
        if db.session.scalar(select(PhoneNumber.id).where(PhoneNumber.phone_number_id == candidate)) is None:
            return candidate


def create_sandbox_number(tenant) -> PhoneNumber:
    """Give ``tenant`` its sandbox number (555 range, never routable). Flushes only."""
    digits = "".join(secrets.choice("0123456789") for _ in range(6))
    number = PhoneNumber(
        tenant_id=tenant.id,
        phone_number_id=_new_phone_number_id(),
        display_number=f"+1 555-01{digits[:2]}-{digits[2:]}",
        # The column holds 200 characters, the company name as many: a long one is shortened, " (sandbox)" kept.
        verified_name=fit(tenant.name, 200, " (sandbox)"),
        mode=MODE_SANDBOX,
        messaging_limit_tier=SANDBOX_MESSAGING_LIMIT_TIER,
    )
    db.session.add(number)
    db.session.flush()
    return number


def numbers_for(tenant, *, include_disconnected: bool = False) -> list[PhoneNumber]:
    """The tenant's numbers, sandbox first; disconnected live numbers only when asked."""
    query = owned_query(PhoneNumber, tenant).order_by(PhoneNumber.id)
    if not include_disconnected:
        query = query.where(PhoneNumber.disconnected_at.is_(None))
    return list(db.session.scalars(query))


cache.watch(PhoneNumber)


@dataclass(frozen=True)
class NumberSnapshot:
    """A phone number as the send path needs it, safe to share between requests."""

    id: int
    tenant_id: int
    phone_number_id: str
    mode: str
    access_token_encrypted: str | None
    waba_id: str | None = None
    messaging_limit_tier: str | None = None


def _not_found(phone_number_id) -> NotFound:
    return NotFound(
        f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation.")


class SendingNumbers:
    """The send path's numbers: a tenant's number by Meta's id, read in ``session`` (a scoped session)
    and kept in the snapshot cache ``caches("numbers")``; no app context needed."""

    def __init__(self, session, caches):
        self.session = session
        self.caches = caches

    def get(self, tenant_id: int, phone_number_id: str) -> NumberSnapshot:
        """NotFound for a number that is not the tenant's, or was disconnected, exactly as for one
        that does not exist."""
        phone_number_id = str(phone_number_id)

        def load():
            row = self.session.execute(select(
                PhoneNumber.id, PhoneNumber.tenant_id, PhoneNumber.phone_number_id, PhoneNumber.mode,
                PhoneNumber.access_token_encrypted, PhoneNumber.waba_id, PhoneNumber.messaging_limit_tier,
                PhoneNumber.disconnected_at).where(PhoneNumber.phone_number_id == phone_number_id)).first()
            if row is None or row.disconnected_at is not None:
                return None
            return NumberSnapshot(*row[:7])

        # Meta's ids are digits; anything else names no number (and never reaches the database).
        wellformed = phone_number_id.isascii() and phone_number_id.isdigit() and len(phone_number_id) <= 64
        number = self.caches("numbers").get(phone_number_id, load) if wellformed else None
        if number is None or number.tenant_id != tenant_id:
            raise _not_found(phone_number_id)
        return number


def sending_number(tenant, phone_number_id: str) -> NumberSnapshot:
    """The tenant's number with Meta's ``phone_number_id`` from the per-process cache (see SendingNumbers)."""
    return SendingNumbers(db.session, cache.cache_for).get(tenant.id, phone_number_id)
