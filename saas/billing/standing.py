"""Whether a subscription's own plan's rights apply at a moment: by its status and, past due, the grace period.

The one statement of the past-due grace rule: a ``past_due`` subscription keeps
its plan for PAST_DUE_GRACE_DAYS from the first failed payment. Entitlements
(what a tenant may do), metering (which period counts) and the back office
(who pays, the revenue figure) all ask it here, in Python or as SQL.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_

from saas.billing.models import Subscription

# Statuses under which only the free plan's rights apply, whatever plan is subscribed.
FREE_RIGHTS = ("unpaid", "canceled", "incomplete", "incomplete_expired", "paused")


@dataclass(frozen=True)
class PastDueGrace:
    """How long a past_due subscription keeps its plan's rights, counted from ``past_due_since``."""

    days: int

    @classmethod
    def configured(cls, config=None) -> "PastDueGrace":
        """The grace this app is set up with (PAST_DUE_GRACE_DAYS of ``config``, or the current app's)."""
        return cls((config if config is not None else current_app.config)["PAST_DUE_GRACE_DAYS"])

    def ends(self, past_due_since: datetime | None) -> datetime | None:
        """When the grace of a subscription past due since ``past_due_since`` ends (None: not known to have begun)."""
        return None if past_due_since is None else past_due_since + timedelta(days=self.days)

    def covers(self, past_due_since: datetime | None, now: datetime) -> bool:
        """Whether ``now`` is still within the grace (a past_due with no start date is)."""
        ends = self.ends(past_due_since)
        return ends is None or now <= ends

    def covers_sql(self, past_due_since, now: datetime):
        """``covers`` as SQL over the column ``past_due_since``."""
        return or_(past_due_since.is_(None), past_due_since >= now - timedelta(days=self.days))


def subscribed_rights_apply(state, now: datetime, grace: PastDueGrace | None = None) -> bool:
    """Whether the subscribed plan's own rights apply at ``now``, not the free plan's in their place.

    False for unpaid, canceled, incomplete, incomplete_expired and paused, and
    for past_due once ``grace`` (default: the app's) is over. ``state`` is a
    Subscription, a SubscriptionState, or None (no subscription: nothing
    subscribed applies).
    """
    status = getattr(state, "status", None)
    if status is None or status in FREE_RIGHTS:
        return False
    if status == "past_due":
        return (grace or PastDueGrace.configured()).covers(state.past_due_since, now)
    return True


def subscribed_rights_apply_sql(now: datetime, grace: PastDueGrace):
    """``subscribed_rights_apply`` as SQL over Subscription's columns."""
    return and_(Subscription.status.not_in(FREE_RIGHTS),
                or_(Subscription.status != "past_due", grace.covers_sql(Subscription.past_due_since, now)))
