"""Signup: a tenant, its owner, its subscription and its sandbox number, in one transaction."""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from saas.billing.services import start_subscription
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import create_sandbox_number
from saas.tenants.models import User
from saas.tenants.services import AccountError, EmailTaken, add_tenant
from saas.timeutil import utcnow


def sign_up(name: str, email: str, password: str, *, plan_code: str = "free", verified: bool = False) -> User:
    """Create a tenant with its owner, its subscription and its sandbox number.

    One transaction: either all of it is written or none. Raises AccountError
    for a bad name, email or password, or an email already registered, and
    UnknownPlan for a plan that does not exist (EmailTaken, an AccountError, for an address
    already registered). ``verified``: the owner's email counts as verified (the CLI); the portal's
    signups verify theirs through the emailed link.
    """
    try:
        owner = add_tenant(name, email, password)
        if verified:
            owner.email_verified_at = utcnow()
        start_subscription(owner.tenant, plan_code)
        create_sandbox_number(owner.tenant)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken() from None
    except BaseException:
        db.session.rollback()
        raise
    return owner
