"""What the send path asks of a tenant's account: what it may do now, and whether it is verified."""
from __future__ import annotations

from contextlib import nullcontext

from flask import current_app, has_app_context

from saas.billing import entitlements
from saas.tenants.services import tenant_verified


class AccountState:
    """The account state the send service is given (built by the factory).

    ``rights`` are billing's (saas.billing.entitlements.for_tenant), which read
    plans and subscriptions through the app's snapshot caches and settings: it
    is asked in the app's context, pushed here when the caller has none (a
    worker thread, a plain function). Whether the tenant is verified is read in
    the send service's ``session`` and remembered once true (an address, once
    verified, stays verified).
    """

    def __init__(self, app, session, caches):
        self.app = app
        self.session = session
        self.caches = caches

    def rights(self, tenant) -> entitlements.Entitlements:
        """What ``tenant`` (a snapshot with ``id`` and ``is_active``) may do now."""
        with self._in_app():
            return entitlements.for_tenant(tenant)

    def verified(self, tenant_id: int) -> bool:
        return bool(self.caches("verified_tenants").get(
            tenant_id, lambda: tenant_verified(tenant_id, session=self.session) or None))

    def _in_app(self):
        if has_app_context() and current_app._get_current_object() is self.app:
            return nullcontext()
        return self.app.app_context()
