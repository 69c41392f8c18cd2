"""Delivery statuses never move backwards and repeat harmlessly."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from saas.extensions import db
from saas.messaging.models import Message
from saas.messaging.inbound.statuses import apply_status
from saas.timeutil import utcnow
from tests.factories import sender, settle


def test_late_and_repeated_statuses_change_nothing(app, client):
    acme = sender(client)
    acme.send()
    settle(app)
    with app.app_context():
        message = db.session.scalar(select(Message))
        wamid, tenant_id = message.wa_message_id, message.tenant_id
        assert message.status == "read"
        read_at = message.read_at
        assert apply_status(tenant_id, wamid, "delivered", utcnow()) is False
        assert apply_status(tenant_id, wamid, "read", utcnow() + timedelta(minutes=1)) is False
        assert apply_status(tenant_id, wamid, "failed", utcnow(), error_code=131026) is False
        db.session.expire_all()
        message = db.session.scalar(select(Message))
        assert (message.status, message.read_at, message.error_code) == ("read", read_at, None)
        db.session.remove()


def test_status_for_another_tenants_message_is_ignored(app, client):
    acme, other = sender(client), sender(client)
    acme.send()
    with app.app_context():
        message = db.session.scalar(select(Message))
        assert apply_status(other.tenant_id, message.wa_message_id, "failed", utcnow()) is False
        db.session.remove()


def test_many_failed_statuses_apply_in_one_batch(app, client):
    from saas.messaging.inbound.statuses import StatusUpdate, apply_status_batch

    acme = sender(client)
    for n in range(3):
        acme.send(to=f"1555123400{n}")
    settle(app)  # the sandbox's own status walk is over
    with app.app_context():
        messages = list(db.session.scalars(select(Message).order_by(Message.id)))
        # Walked back to "sent" so a failure may still apply (the sandbox has them read).
        for message in messages:
            message.status, message.delivered_at, message.read_at = "sent", None, None
        db.session.commit()
        at = utcnow()
        changed = apply_status_batch([StatusUpdate(m.tenant_id, m.wa_message_id, "failed", at, error_code=131000 + i)
                                      for i, m in enumerate(messages)])
        assert changed == 3
        db.session.expire_all()
        assert [(m.status, m.error_code) for m in db.session.scalars(select(Message).order_by(Message.id))] == [
            ("failed", 131000), ("failed", 131001), ("failed", 131002)]
        db.session.remove()
