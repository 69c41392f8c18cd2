"""Who in a tenant may do what: one table, read by every portal view that changes something and by the nav."""
from __future__ import annotations

from saas.tenants.models import ROLE_ADMIN, ROLE_BILLING, ROLE_DEVELOPER, ROLE_OWNER, ROLES

# area -> the roles that may use it (see it in the nav, open its pages, change it).
PERMISSIONS: dict[str, frozenset[str]] = {
    "keys": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "contacts": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "numbers": frozenset({ROLE_OWNER, ROLE_ADMIN}),
    "templates": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "webhooks": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "billing": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_BILLING}),
    "members": frozenset({ROLE_OWNER, ROLE_ADMIN}),
    "audit": frozenset({ROLE_OWNER, ROLE_ADMIN}),
}

AREA_NAMES = {"keys": "API keys", "contacts": "contacts", "numbers": "numbers", "templates": "message templates",
              "webhooks": "webhooks", "billing": "billing", "members": "team members", "audit": "the audit log"}

ROLE_DESCRIPTIONS = {
    ROLE_OWNER: "everything, including granting the owner role",
    ROLE_ADMIN: "everything but granting or taking away the owner role",
    ROLE_DEVELOPER: "API keys, message templates and contacts",
    ROLE_BILLING: "billing only",
}

assert set(ROLE_DESCRIPTIONS) == set(ROLES)


def may(role: str | None, area: str) -> bool:
    """Whether ``role`` may use ``area`` (an unknown area is refused, never allowed)."""
    return role in PERMISSIONS.get(area, frozenset())
