"""A tenant's automation settings and its numbers' business hours: read and changed here. Commits."""
from __future__ import annotations

from sqlalchemy import select

from saas.automation.hours import HoursInvalid, checked_holidays, checked_weekly, zone
from saas.automation.models import DEFAULT_REPLIES_PER_HOUR, DEFAULT_TIMEZONE, BusinessHours, Settings
from saas.errors import InvalidRequest, NotFound
from saas.extensions import db
from saas.ids import parse_id
from saas.messaging.models import PhoneNumber
from saas.timeutil import utcnow

REPLIES_PER_HOUR_MAX = 100


def settings_of(tenant) -> Settings:
    """The tenant's settings (the defaults until it changes them)."""
    return db.session.get(Settings, tenant.id) or Settings(
        tenant_id=tenant.id, timezone=DEFAULT_TIMEZONE, replies_per_hour=DEFAULT_REPLIES_PER_HOUR)


def change_settings(tenant, body) -> Settings:
    """Change the time zone and the hourly cap of automated replies per thread (1 to 100)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    row = db.session.get(Settings, tenant.id)
    if row is None:
        row = settings_of(tenant)
        db.session.add(row)
    if "timezone" in body:
        try:
            zone(body["timezone"])
        except HoursInvalid as exc:
            raise InvalidRequest("Some fields are missing or invalid.", details={"timezone": [str(exc)]}) from None
        row.timezone = body["timezone"]
    if "replies_per_hour" in body:
        cap = body["replies_per_hour"]
        if not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= REPLIES_PER_HOUR_MAX:
            db.session.rollback()
            raise InvalidRequest("Some fields are missing or invalid.",
                                 details={"replies_per_hour": [f"1 to {REPLIES_PER_HOUR_MAX}."]})
        row.replies_per_hour = cap
    db.session.commit()
    return row


def number_of(tenant, number_id) -> PhoneNumber:
    """One of the tenant's numbers by our id; NotFound otherwise (another tenant's included)."""
    number_id = parse_id(number_id)
    number = None
    if number_id is not None and number_id < 2**31:
        number = db.session.scalar(select(PhoneNumber).where(PhoneNumber.id == number_id,
                                                             PhoneNumber.tenant_id == tenant.id))
    if number is None:
        raise NotFound("No such number.")
    return number


def hours_of(tenant, number_id) -> BusinessHours | None:
    number = number_of(tenant, number_id)
    return db.session.get(BusinessHours, (tenant.id, number.id))


def set_hours(tenant, number_id, body) -> BusinessHours:
    """The number's week and holidays, replaced by ``body``'s ``weekly`` and ``holidays``."""
    number = number_of(tenant, number_id)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        weekly, holidays = checked_weekly(body.get("weekly", {})), checked_holidays(body.get("holidays", []))
    except HoursInvalid as exc:
        raise InvalidRequest("Some fields are missing or invalid.", details={exc.field: [str(exc)]}) from None
    row = db.session.get(BusinessHours, (tenant.id, number.id))
    if row is None:
        row = BusinessHours(tenant_id=tenant.id, phone_number_id=number.id)
        db.session.add(row)
    row.weekly, row.holidays, row.updated_at = weekly, holidays, utcnow()
    db.session.commit()
    return row


def clear_hours(tenant, number_id) -> None:
    row = hours_of(tenant, number_id)
    if row is not None:
        db.session.delete(row)
        db.session.commit()
