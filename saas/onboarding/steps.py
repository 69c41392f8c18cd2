"""The dashboard's first steps for a new tenant: what is done, what is left."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select

from saas.extensions import db
from saas.messaging.models import Message
from saas.tenants.models import ApiKey


@dataclass(frozen=True)
class FirstSteps:
    has_key: bool
    sent_message: bool

    @property
    def done(self) -> bool:
        return self.has_key and self.sent_message


def first_steps(tenant) -> FirstSteps:
    """A key exists (even one revoked since: the step was taken), and a message went out (not failed)."""
    has_key = db.session.scalar(select(exists().where(ApiKey.tenant_id == tenant.id)))
    sent = db.session.scalar(select(exists().where(
        Message.tenant_id == tenant.id, Message.direction == "out", Message.status != "failed")))
    return FirstSteps(has_key=bool(has_key), sent_message=bool(sent))
