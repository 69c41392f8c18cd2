"""The plan's limit of contacts stored (``max_contacts``; None: no limit), checked on every path that creates
contacts for the tenant: the API, the portal and imports.

Contacts WhatsApp delivers (an inbound message from someone new) are always stored, past the limit too: the
message is the tenant's already, and its sender must be answerable. So the count can pass the limit; what
the tenant creates itself then waits until it is back under it.
"""
from __future__ import annotations

from sqlalchemy import func, select, text

from saas.contacts.models import Contact
from saas.errors import QuotaExceeded

# The first key of the transaction-scoped advisory lock that serialises the contact creations of one tenant
# (the second is the tenant id), so two at the limit cannot both pass the count.
LOCK_KEY = 0x636F6E74  # "cont"


def contact_limit(rights) -> int | None:
    """How many contacts the tenant may store under the rights in force (None: no limit)."""
    return rights.effective.max_contacts


def stored(session, tenant_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant_id))


def room(session, tenant_id: int, rights) -> int | None:
    """How many more contacts the tenant may create now (None: no limit), in the caller's transaction.

    With a limit, the tenant's creations are serialised until the transaction ends (on PostgreSQL an
    advisory lock; SQLite takes its write lock at BEGIN), so the count stays true until the insert commits.
    """
    limit = contact_limit(rights)
    if limit is None:
        return None
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key, :tenant)"), {"key": LOCK_KEY, "tenant": tenant_id})
    return max(limit - stored(session, tenant_id), 0)


def ensure_room(session, tenant_id: int, rights, adding: int = 1) -> None:
    """Return when ``adding`` more contacts fit; else the refusal (QuotaExceeded, or PaymentRequired when
    the plan paid for would hold them but its rights are withheld), with the upgrade link."""
    left = room(session, tenant_id, rights)
    if left is not None and left < adding:
        raise refusal(rights, stored(session, tenant_id))


def refusal(rights, count: int):
    """The refusal of one more contact for a tenant that stores ``count`` under ``rights``."""
    limit = contact_limit(rights)
    paid = rights.plan.max_contacts
    details = {"metric": "contacts", "quota": limit, "stored": count}
    if rights.withheld and (paid is None or paid > limit):
        return rights.payment_required("storing more contacts", **details)
    return QuotaExceeded(f"Your {rights.effective.name} plan stores at most {limit:,} contacts and {count:,} are "
                         "stored: upgrade to store more, or delete contacts you no longer need.",
                         details=details, upgrade=True)
