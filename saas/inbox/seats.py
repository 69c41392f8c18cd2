"""Inbox seats: how many members may hold the agent role, from the plan in force."""
from __future__ import annotations

from saas.billing import entitlements
from saas.tenants.models import ROLE_AGENT

FEATURE = "inbox"


def agent_seats(rights) -> int | None:
    """The agent seats ``rights`` allow: the plan's ``inbox_seats`` (None: no limit) with the inbox, else 0."""
    if not rights.may(FEATURE):
        return 0
    return rights.effective.inbox_seats


def role_limits(tenant) -> dict[str, int | None]:
    """What saas.tenants.team's invite and change_role take as ``limits`` for ``tenant``: its agent seats."""
    return {ROLE_AGENT: agent_seats(entitlements.for_tenant(tenant))}
