"""Contacts made from inbound messages: a real signed webhook in, the consumer of message.received out."""
from __future__ import annotations

from sqlalchemy import select

from saas.billing.catalog import plan_by_code
from saas.contacts.models import Contact, ContactEvent
from saas.extensions import db
from saas.timeutil import from_timestamp
from tests import whatsapp_payloads as wa
from tests.webhooks.test_whatsapp_inbound import acme, deliver, whatsapp  # noqa: F401 (fixtures)


def contacts(app) -> list[Contact]:
    with app.app_context():
        rows = db.session.scalars(select(Contact).order_by(Contact.id)).all()
        db.session.expunge_all()
        db.session.remove()
    return rows


def inbound(number, *messages, contacts_=None):
    return wa.notification(number.waba_id, ("messages", wa.messages_value(
        number, contacts=contacts_ if contacts_ is not None else [wa.contact()], messages=list(messages))))


def test_a_first_message_makes_its_sender_a_contact_once(app, client, whatsapp, acme):  # noqa: F811
    first = wa.inbound("text", {"body": "hi"}, timestamp="1767225600")
    payload = inbound(acme, first)
    deliver(app, client, payload)
    deliver(app, client, payload)  # WhatsApp delivers again: nothing new
    (contact,) = contacts(app)
    assert (contact.tenant_id, contact.wa_id, contact.name, contact.country, contact.source) == (
        acme.tenant_id, "16505551234", "Sheena Nelson", "US", "inbound")
    assert contact.last_inbound_at == from_timestamp(1767225600)
    later = wa.inbound("text", {"body": "again"}, timestamp="1767229200")
    deliver(app, client, inbound(acme, later, contacts_=[wa.contact(name="Someone Else")]))
    (contact,) = contacts(app)
    assert contact.last_inbound_at == from_timestamp(1767229200)
    assert contact.name == "Sheena Nelson"  # a name it has is never replaced by the profile's
    with app.app_context():
        kinds = db.session.scalars(select(ContactEvent.kind).where(ContactEvent.contact_id == contact.id)).all()
        assert kinds == ["created"]
        db.session.remove()


def test_an_older_message_delivered_late_does_not_move_last_inbound_back(app, client, whatsapp, acme):  # noqa: F811
    deliver(app, client, inbound(acme, wa.inbound("text", {"body": "new"}, timestamp="1767229200")))
    deliver(app, client, inbound(acme, wa.inbound("text", {"body": "old"}, timestamp="1767225600")))
    assert contacts(app)[0].last_inbound_at == from_timestamp(1767229200)


def test_several_senders_in_one_notification_and_users_known_only_by_user_id(app, client, whatsapp, acme):  # noqa: F811
    payload = inbound(acme, wa.inbound("text", {"body": "a"}, sender="905321234567"),
                      wa.inbound("text", {"body": "b"}, sender=None, user_id="TR.1234567890"),
                      contacts_=[wa.contact("905321234567", name="Ayşe"),
                                 wa.contact(None, name="Username user", user_id="TR.1234567890")])
    deliver(app, client, payload)
    found = {(c.wa_id, c.user_id, c.name, c.country) for c in contacts(app)}
    assert found == {("905321234567", None, "Ayşe", "TR"), (None, "TR.1234567890", "Username user", None)}


def test_inbound_contacts_are_stored_past_the_plans_limit(app, client, whatsapp, acme):  # noqa: F811
    with app.app_context():
        plan_by_code("starter").max_contacts = 0
        db.session.commit()
    deliver(app, client, inbound(acme, wa.inbound("text", {"body": "hi"})))
    assert [c.wa_id for c in contacts(app)] == ["16505551234"]


def test_each_tenant_gets_its_own_contact_for_one_sender(app, client, whatsapp, acme):  # noqa: F811
    from tests.factories import make_tenant

    with app.app_context():
        other = wa.add_live_number(make_tenant("starter").id, waba_id="999888777")
        db.session.remove()
    deliver(app, client, inbound(acme, wa.inbound("text", {"body": "one"})))
    deliver(app, client, inbound(other, wa.inbound("text", {"body": "two"})))
    assert sorted((c.tenant_id, c.wa_id) for c in contacts(app)) == [(acme.tenant_id, "16505551234"),
                                                                    (other.tenant_id, "16505551234")]
