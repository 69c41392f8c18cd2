"""What the send path asks of a tenant's account: what it may do now, and whether it is verified."""
from __future__ import annotations

from saas.billing import entitlements
from saas.database import reading
from saas.tenants.services import tenant_verified


class AccountState:
    """The account state the send service is given (built by the factory), reaching nothing else.

    ``rights`` are billing's (saas.billing.entitlements.Rights: plans and
    subscriptions read in the send service's session through the app's
    snapshot caches, under the app's settings), so they are answered with no
    app context; a transaction their reads begin ends with them (a caller may
    ask for rights and send nothing). Whether the tenant is verified is read
    in ``session`` and remembered in ``caches("verified_tenants")`` once true
    (an address, once verified, stays verified).
    """

    def __init__(self, rights: entitlements.Rights, session, caches):
        self.entitlements = rights
        self.session = session
        self.caches = caches

    def rights(self, tenant) -> entitlements.Entitlements:
        """What ``tenant`` (a snapshot with ``id`` and ``is_active``) may do now."""
        with reading(self.session):
            return self.entitlements.for_tenant(tenant)

    def verified(self, tenant_id: int) -> bool:
        return bool(self.caches("verified_tenants").get(
            tenant_id, lambda: tenant_verified(tenant_id, session=self.session) or None))
