"""Making, reading and steering a tenant's broadcasts: create (with its check), start or schedule,
pause, resume, cancel, and the recipients' outcomes. Every function takes the tenant and finds its
rows through it; one of another tenant's is NotFound."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from saas.billing.models import Plan
from saas.broadcasts import audience as audiences
from saas.broadcasts import check as checks
from saas.broadcasts import check_job
from saas.broadcasts import schedule
from saas.broadcasts.models import (
    CANCELLED, CHECKING, DRAFT, MAX_RATE, PAUSED, QUEUED, RECIPIENT_STATUSES, RUNNING, SCHEDULED, SKIPPED, Broadcast,
    BroadcastRecipient,
)
from saas.broadcasts.settings import INLINE_MAX
from saas.broadcasts.templates import Sendable, sendable
from saas.broadcasts.variables import binding_problems
from saas.errors import ApiError, InvalidRequest, NotFound
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.tenants.scoping import get_owned
from saas.text import problem
from saas.timeutil import utcnow

FEATURE = "broadcast"
EXPORT_FEATURE = "analytics_export"
CANCELLED_REASON = "cancelled"


class BroadcastState(ApiError):
    status = 409
    code = "broadcast_state"
    graph_code = 4091
    message = "The broadcast cannot do that now."


def require_feature(rights) -> None:
    """The plan's gate for every broadcast path: FeatureNotInPlan (403) or PaymentRequired (402), with the
    upgrade link."""
    rights.require(FEATURE, "broadcasts")


def create(tenant, rights, data: dict, *, actor: str | None = None, inline_max: int = INLINE_MAX) -> Broadcast:
    """A draft broadcast from ``data`` (the API's fields, validated here), with its check. Commits. An
    audience of more than ``inline_max`` contacts is checked by a job: the broadcast is ``checking`` until
    its check is ready.

    Raises InvalidRequest (per-field details) for a bad number, template, binding, audience or
    schedule; FeatureNotInPlan / PaymentRequired without the plan's ``broadcast``."""
    require_feature(rights)
    errors: dict = {}
    number = _number(tenant, data.get("phone_number_id"), errors)
    template = _template(number, data, errors) if number is not None else None
    if template is not None:
        errors.update({f"variables.{k}": v for k, v in
                       binding_problems(data.get("variables") or {}, template.variables).items()})
    spec = _audience(data.get("audience"), errors)
    when = _schedule(data.get("schedule"), errors)
    name = data.get("name") or "Broadcast"
    if not isinstance(name, str) or len(name) > 200 or problem(name):
        errors["name"] = "At most 200 characters, without control characters."
    rate = data.get("messages_per_second", None)
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= MAX_RATE):
        errors["messages_per_second"] = f"A whole number from 1 to {MAX_RATE}."
    if not isinstance(data.get("retry_per_user_limit", False), bool):
        errors["retry_per_user_limit"] = "true or false."
    if errors:
        raise InvalidRequest("Some fields are missing or invalid.", details=errors)
    plan = db.session.get(Plan, rights.effective.id)
    audiences.take_list(db.session, tenant.id, spec, actor, plan.max_contacts if plan else None)
    broadcast = Broadcast(
        tenant_id=tenant.id, name=name, phone_number_id=number.id, template_name=template.name,
        template_language=template.language, template_category=template.category,
        variables=data.get("variables") or {}, audience=spec, status=DRAFT, created_by=actor,
        messages_per_second=rate or 80, retry_per_user_limit=data.get("retry_per_user_limit") is True, **when)
    db.session.add(broadcast)
    db.session.flush()
    _check(tenant, rights, broadcast, number, template, inline_max)
    return broadcast


def _number(tenant, phone_number_id, errors: dict):
    numbers = numbers_for(tenant)
    if phone_number_id is None and len(numbers) == 1:
        return numbers[0]
    found = next((n for n in numbers if n.phone_number_id == phone_number_id), None)
    if found is None:
        errors["phone_number_id"] = ("Name the sending number (one of the account's phone_number_id)."
                                     if phone_number_id is None else "Not one of this account's numbers.")
    return found


def _template(number, data: dict, errors: dict) -> Sendable | None:
    template = data.get("template") or {}
    if not isinstance(template, dict) or not isinstance(template.get("name"), str) or not isinstance(
            template.get("language"), str) or len(template["name"]) > 512 or len(template["language"]) > 15:
        errors["template"] = "Give {\"name\": ..., \"language\": ...} of an approved template."
        return None
    found = sendable(db.session, number, template["name"], template["language"])
    if isinstance(found, str):
        errors["template"] = found
        return None
    return found


def _audience(spec, errors: dict) -> dict:
    try:
        return audiences.validated(spec)
    except audiences.AudienceInvalid as exc:
        errors.update({f"audience.{k}" if k != "audience" else k: v for k, v in exc.errors.items()})
        return {}


def _schedule(spec, errors: dict) -> dict:
    """The broadcast's schedule columns from {"at", "timezone", "recurrence"} (or none: send when started)."""
    if spec is None:
        return {}
    if not isinstance(spec, dict) or set(spec) - {"at", "timezone", "recurrence"}:
        errors["schedule"] = "Give {\"at\": \"YYYY-MM-DDTHH:MM\", \"timezone\": ..., \"recurrence\": daily|weekly}."
        return {}
    try:
        tz_name = spec.get("timezone") or "UTC"
        tz = schedule.zone(tz_name)
        local = schedule.parse_local(spec.get("at"))
    except schedule.ScheduleInvalid as exc:
        errors[f"schedule.{exc.field}"] = str(exc)
        return {}
    recurrence = spec.get("recurrence")
    if recurrence is not None and (not isinstance(recurrence, str) or recurrence not in schedule.STEP):
        errors["schedule.recurrence"] = "daily or weekly (or none)."
        return {}
    at = schedule.to_utc(local, tz)
    if at <= utcnow() and recurrence is None:
        errors["schedule.at"] = "That time has passed; leave the schedule out to send when started."
        return {}
    return {"schedule_at": at, "schedule_local": schedule.local_text(local), "timezone": tz_name,
            "recurrence": recurrence}


def _check(tenant, rights, broadcast, number, template, inline_max: int) -> None:
    """The check of the draft ``broadcast`` now, or, past ``inline_max`` contacts, handed to a job (the
    broadcast ``checking``). Commits."""
    audience = audiences.size(db.session, tenant.id, broadcast.audience)
    if audience <= inline_max:
        broadcast.check_result = checks.run(db.session, tenant, rights, broadcast, number, template.variables)
        broadcast.checked_at, broadcast.check_progress = utcnow(), None
        db.session.commit()
        return
    # A conditional step, so a start that won a race with a new check is never turned back into one.
    _move(tenant, broadcast.id, (DRAFT,), CHECKING, "checked again", check_result=None, check_lease_until=None,
          check_progress={"checked": 0, "audience": audience})
    db.session.commit()
    check_job.start(broadcast.id)


def recheck(tenant, rights, broadcast_id, *, inline_max: int = INLINE_MAX) -> Broadcast:
    """The check of a draft run again now (the audience or the plan may have changed), or by a job past
    ``inline_max`` contacts. Commits. BroadcastState unless it is a draft."""
    require_feature(rights)
    broadcast = get(tenant, broadcast_id)
    if broadcast.status != DRAFT:
        raise BroadcastState(f"A {broadcast.status} broadcast cannot be checked again.",
                             details={"status": broadcast.status})
    number = _owned_number(tenant, broadcast)
    template = sendable(db.session, number, broadcast.template_name, broadcast.template_language)
    if isinstance(template, str):
        raise BroadcastState(template)
    _check(tenant, rights, broadcast, number, template, inline_max)
    return broadcast


def _owned_number(tenant, broadcast):
    number = next((n for n in numbers_for(tenant, include_disconnected=True) if n.id == broadcast.phone_number_id),
                  None)
    if number is None:
        raise NotFound("No such number.")
    return number


# -- reading ---------------------------------------------------------------------------------------------

def get(tenant, broadcast_id) -> Broadcast:
    return get_owned(Broadcast, broadcast_id, tenant, what="broadcast")


def list_for(tenant, *, limit: int = 25, before: int | None = None) -> list[Broadcast]:
    query = select(Broadcast).where(Broadcast.tenant_id == tenant.id)
    if before is not None:
        query = query.where(Broadcast.id < before)
    return list(db.session.scalars(query.order_by(Broadcast.id.desc()).limit(limit)))


def counts(tenant, broadcast_ids: list[int]) -> dict[int, dict]:
    """Each broadcast's recipients by status (every status present, zeros included)."""
    found = {bid: dict.fromkeys(RECIPIENT_STATUSES, 0) for bid in broadcast_ids}
    if broadcast_ids:
        rows = db.session.execute(
            select(BroadcastRecipient.broadcast_id, BroadcastRecipient.status, func.count())
            .where(BroadcastRecipient.tenant_id == tenant.id, BroadcastRecipient.broadcast_id.in_(broadcast_ids))
            .group_by(BroadcastRecipient.broadcast_id, BroadcastRecipient.status))
        for bid, status, n in rows:
            found[bid][status] = n
    return found


def failure_reasons(tenant, broadcast_id: int) -> list[tuple]:
    """(status, code or reason, title, count) of the broadcast's failed and skipped recipients, most first."""
    reason = func.coalesce(BroadcastRecipient.error_code, BroadcastRecipient.skip_reason)
    rows = db.session.execute(
        select(BroadcastRecipient.status, reason, func.max(BroadcastRecipient.error_title), func.count())
        .where(BroadcastRecipient.tenant_id == tenant.id, BroadcastRecipient.broadcast_id == broadcast_id,
               BroadcastRecipient.status.in_(("failed", SKIPPED)))
        .group_by(BroadcastRecipient.status, reason).order_by(func.count().desc()))
    return [tuple(row) for row in rows]


def recipients(tenant, broadcast_id, *, status: str | None = None, after: int = 0,
               limit: int = 100) -> list[BroadcastRecipient]:
    """A page of the broadcast's recipients in id order after ``after`` (cursor paging)."""
    broadcast = get(tenant, broadcast_id)
    query = select(BroadcastRecipient).where(BroadcastRecipient.tenant_id == tenant.id,
                                             BroadcastRecipient.broadcast_id == broadcast.id,
                                             BroadcastRecipient.id > after)
    if status is not None:
        query = query.where(BroadcastRecipient.status == status)
    return list(db.session.scalars(query.order_by(BroadcastRecipient.id).limit(limit)))


def sends_over_time(tenant, broadcast_id: int) -> list[tuple[datetime, int]]:
    """(minute, sends) of the broadcast, for its chart: recipients sent, by the minute they were."""
    rows = db.session.execute(
        select(BroadcastRecipient.sent_at).where(
            BroadcastRecipient.tenant_id == tenant.id, BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.sent_at.is_not(None)).order_by(BroadcastRecipient.sent_at))
    buckets: dict[datetime, int] = {}
    for (at,) in rows:
        minute = at.replace(second=0, microsecond=0)
        buckets[minute] = buckets.get(minute, 0) + 1
    return sorted(buckets.items())


# -- steering -----------------------------------------------------------------------------------------

def _move(tenant, broadcast_id, allowed: tuple, to: str, verb: str, **values) -> Broadcast:
    """One atomic step of a broadcast's state: from one of ``allowed`` to ``to``; BroadcastState otherwise."""
    broadcast = get(tenant, broadcast_id)
    now = utcnow()
    moved = db.session.execute(
        update(Broadcast).where(Broadcast.id == broadcast.id, Broadcast.tenant_id == tenant.id,
                                Broadcast.status.in_(allowed))
        .values(status=to, updated_at=now, **values).execution_options(synchronize_session=False)).rowcount
    if not moved:
        db.session.rollback()
        raise BroadcastState(f"A {broadcast.status} broadcast cannot be {verb}.",
                             details={"status": broadcast.status})
    return broadcast


def start(tenant, rights, broadcast_id) -> Broadcast:
    """Confirm a draft: it runs now, or at its scheduled time. Its recipients are frozen by the engine
    (saas.broadcasts.freeze) as it begins. Commits."""
    require_feature(rights)
    broadcast = get(tenant, broadcast_id)
    now = utcnow()
    if broadcast.schedule_at is not None and broadcast.schedule_at > now:
        _move(tenant, broadcast.id, (DRAFT,), SCHEDULED, "started")
    else:
        _move(tenant, broadcast.id, (DRAFT,), RUNNING, "started", started_at=now)
    db.session.commit()
    db.session.refresh(broadcast)
    return broadcast


def pause(tenant, rights, broadcast_id) -> Broadcast:
    """Stop sending after the batch under way. Commits."""
    require_feature(rights)
    broadcast = _move(tenant, broadcast_id, (RUNNING,), PAUSED, "paused")
    db.session.commit()
    db.session.refresh(broadcast)
    return broadcast


def resume(tenant, rights, broadcast_id) -> Broadcast:
    require_feature(rights)
    broadcast = _move(tenant, broadcast_id, (PAUSED,), RUNNING, "resumed")
    db.session.commit()
    db.session.refresh(broadcast)
    return broadcast


def cancel(tenant, rights, broadcast_id) -> Broadcast:
    """Stop for good: the recipients not yet sent are skipped (cancelled). Commits."""
    require_feature(rights)
    now = utcnow()
    broadcast = _move(tenant, broadcast_id, (CHECKING, DRAFT, SCHEDULED, RUNNING, PAUSED), CANCELLED, "cancelled",
                      finished_at=now)
    db.session.execute(
        update(BroadcastRecipient).where(BroadcastRecipient.tenant_id == tenant.id,
                                         BroadcastRecipient.broadcast_id == broadcast.id,
                                         BroadcastRecipient.status == QUEUED)
        .values(status=SKIPPED, skip_reason=CANCELLED_REASON, updated_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(broadcast)
    return broadcast
