"""Meta's webhooks about a WABA's templates: status (approved, rejected, paused, disabled ...),
quality score and category changes, applied to every tenant's copy of the template.

Templates are synced in saas.messaging.templates.sync and sent through
saas.messaging.templates.message_templates; this module only keeps them current between syncs.
Each copy that changes (or is deleted) publishes ``template.changed`` (saas.messaging.domain_events)
in the same transaction.
"""
from __future__ import annotations

from sqlalchemy import select

from saas import events
from saas.extensions import db
from saas.messaging import domain_events as happened
from saas.messaging.models import Template
from saas.messaging.templates.message_templates import CATEGORIES, QUALITY_SCORES, SENDABLE, STATUSES, reason_text

TEMPLATE_FIELDS = ("message_template_status_update", "message_template_quality_update", "template_category_update")
# Events that put a template back in service.
REINSTATING = ("REINSTATED", "UNPAUSED")


def apply_template_webhook(waba_id, field: str, value) -> str:
    """Apply one ``changes[]`` entry of a WABA webhook about templates; returns what it did. Commits.

    ``field`` is the change's field (message_template_status_update,
    message_template_quality_update or template_category_update) and
    ``value`` its value as Meta sent it. Finds the template by Meta's id
    (else by name and language) in every tenant with that WABA. Safe to
    repeat. A template we do not know yet is left for the next sync.
    """
    try:
        outcome = apply_template_change(waba_id, field, value)
        events.commit(db.session)
    except BaseException:
        db.session.rollback()
        raise
    return outcome


def apply_template_change(waba_id, field: str, value) -> str:
    """apply_template_webhook inside the caller's transaction (the webhook's batch): flushes, never commits."""
    if field not in TEMPLATE_FIELDS or not isinstance(value, dict) or not isinstance(waba_id, str):
        return "ignored"
    rows = _webhook_rows(waba_id, value)
    if not rows:
        return "unknown template"
    before = [_state(row) for row in rows]
    if field == "message_template_status_update":
        outcome = _apply_status(rows, value)
    elif field == "message_template_quality_update":
        outcome = _apply_quality(rows, value)
    else:
        outcome = _apply_category(rows, value)
    deleted = set(db.session.deleted)
    events.publish(db.session.connection(), [
        happened.template_changed(row, field, deleted=row in deleted)
        for row, was in zip(rows, before) if row in deleted or _state(row) != was])
    db.session.flush()
    return outcome


def _state(row: Template) -> tuple:
    return row.status, row.category, row.quality_score, row.reason


def _webhook_rows(waba_id: str, value: dict) -> list[Template]:
    meta_id = value.get("message_template_id")
    rows: list[Template] = []
    if isinstance(meta_id, (int, str)) and not isinstance(meta_id, bool) and str(meta_id):
        rows = list(db.session.scalars(select(Template).where(
            Template.waba_id == waba_id, Template.meta_id == str(meta_id)[:64])))
    name, language = value.get("message_template_name"), value.get("message_template_language")
    if not rows and isinstance(name, str) and isinstance(language, str):
        rows = list(db.session.scalars(select(Template).where(
            Template.waba_id == waba_id, Template.name == name[:512], Template.language == language[:15])))
    return rows


def _apply_status(rows: list[Template], value: dict) -> str:
    event = value.get("event")
    if not isinstance(event, str):
        return "ignored"
    status = "APPROVED" if event in REINSTATING else event
    if status not in STATUSES:
        # FLAGGED, LOCKED, UNLOCKED ...: the template keeps its status (a sync tells the rest).
        return f"event {event[:30]} ignored"
    if status == "DELETED":
        for row in rows:
            db.session.delete(row)
        return "deleted"
    category = value.get("message_template_category")
    for row in rows:
        row.status = status
        row.reason = None if status == SENDABLE else reason_text(value.get("reason"))
        if category in CATEGORIES:
            row.category = category
    return f"status {status}"


def _apply_quality(rows: list[Template], value: dict) -> str:
    score = value.get("new_quality_score")
    if score not in QUALITY_SCORES:
        return "ignored"
    for row in rows:
        row.quality_score = score
    return f"quality {score}"


def _apply_category(rows: list[Template], value: dict) -> str:
    new = value.get("new_category")
    if "previous_category" not in value:
        # An impending change (correct_category, category_update_timestamp): nothing changed yet.
        return "impending category change"
    if new not in CATEGORIES:
        return "ignored"
    for row in rows:
        row.category = new
    return f"category {new}"
