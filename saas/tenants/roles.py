"""Who in a tenant may do what: one table, read by every portal view that changes something and by the nav."""
from __future__ import annotations

from saas.tenants.models import ROLE_ADMIN, ROLE_AGENT, ROLE_BILLING, ROLE_DEVELOPER, ROLE_OWNER, ROLES

# area -> the roles that may use it (see it in the nav, open its pages, change it).
PERMISSIONS: dict[str, frozenset[str]] = {
    "keys": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "contacts": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "numbers": frozenset({ROLE_OWNER, ROLE_ADMIN}),
    "templates": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "broadcasts": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "webhooks": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    "billing": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_BILLING}),
    "members": frozenset({ROLE_OWNER, ROLE_ADMIN}),
    "audit": frozenset({ROLE_OWNER, ROLE_ADMIN}),
    # Recording contacts' opt-ins and opt-outs, and the keywords that opt them out.
    "consent": frozenset({ROLE_OWNER, ROLE_ADMIN}),
    # The dashboard (usage, numbers, recent messages): everyone but agents, who see the inbox only.
    "dashboard": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER, ROLE_BILLING}),
    "inbox": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_AGENT}),
    # Automation rules, business hours and their settings (agents see the inbox only).
    "automation": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    # Orders and their timelines (agents answer customers about them), and confirming a WhatsApp cart.
    "orders": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER, ROLE_AGENT}),
    # The templates order events send, and the shop connections with their secrets.
    "order_settings": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER}),
    # Exports of messages, costs, usage and orders: those who read the dashboard (billing reads the usage
    # records behind an invoice's overage line); not agents.
    "exports": frozenset({ROLE_OWNER, ROLE_ADMIN, ROLE_DEVELOPER, ROLE_BILLING}),
}

AREA_NAMES = {"keys": "API keys", "contacts": "contacts", "numbers": "numbers", "templates": "message templates",
              "broadcasts": "broadcasts",
              "webhooks": "webhooks", "billing": "billing", "members": "team members", "audit": "the audit log",
              "consent": "marketing consent", "dashboard": "the dashboard", "inbox": "the inbox",
              "automation": "automation", "orders": "orders", "order_settings": "order notification settings",
              "exports": "exports"}

ROLE_DESCRIPTIONS = {
    ROLE_OWNER: "everything, including granting the owner role",
    ROLE_ADMIN: "everything but granting or taking away the owner role",
    ROLE_DEVELOPER: "API keys, message templates, contacts, broadcasts and automation",
    ROLE_BILLING: "billing only",
    ROLE_AGENT: "the support inbox only (takes an inbox seat)",
}

assert set(ROLE_DESCRIPTIONS) == set(ROLES)


def may(role: str | None, area: str) -> bool:
    """Whether ``role`` may use ``area`` (an unknown area is refused, never allowed)."""
    return role in PERMISSIONS.get(area, frozenset())
