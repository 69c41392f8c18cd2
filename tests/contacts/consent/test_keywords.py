"""STOP-type keywords: a contact's message that is, whole, one of the tenant's keywords (the defaults in English
and Turkish while it has none) opts them out of the number's marketing, or back in; as they type it."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from saas.contacts.consent import keywords
from saas.contacts.models import Contact
from saas.extensions import db
from tests import whatsapp_payloads as wa
from tests.contacts.consent.conftest import history, states
from tests.factories import make_tenant
from tests.webhooks.test_whatsapp_inbound import deliver

ADA = "16505551234"


@pytest.mark.parametrize("said, action", [
    ("STOP", "opted_out"), ("  stop  ", "opted_out"), ("Stop!", "opted_out"), ("stop   all", "opted_out"),
    ("Unsubscribe.", "opted_out"), ("İPTAL", "opted_out"), ("iptal", "opted_out"), ("IPTAL", "opted_out"),
    ("ıptal", "opted_out"), ("İptal", "opted_out"), ("DUR", "opted_out"), ("RET", "opted_out"),
    ("ABONELİKTEN ÇIK", "opted_out"), ("abonelikten çık", "opted_out"), ("Abonelikten cik", "opted_out"),
    ("İSTEMİYORUM", "opted_out"), ("START", "opted_in"), ("başla", "opted_in"), ("BASLA", "opted_in"),
    ("please stop", None), ("STOPPED", None), ("stop it", None), ("", None), ("STOP " * 30, None),
])
def test_the_whole_message_is_compared_case_accent_and_turkish_i_blind(said, action):
    assert keywords.action_for(said, keywords.DEFAULT_ACTIONS) == action


@pytest.fixture
def acme(app):
    """A Pro tenant with one live number, as WhatsApp's notifications name it."""
    with app.app_context():
        number = wa.add_live_number(make_tenant("pro").id)
        db.session.remove()
    return number


def said(number, text: str, *, sender=ADA, kind="text", timestamp=None, message_id=None) -> dict:
    body = {"body": text} if kind == "text" else {"text": text, "payload": text}
    message = wa.inbound(kind, body, sender=sender, timestamp=timestamp, message_id=message_id)
    return wa.notification(number.waba_id, ("messages", wa.messages_value(
        number, contacts=[wa.contact(sender, name="Ada Lovelace")], messages=[message])))


def test_stop_opts_the_sender_out_and_start_back_in_with_the_words_as_proof(app, client, whatsapp, acme):
    now = int(time.time())
    deliver(app, client, said(acme, "İptal", timestamp=str(now - 5)))
    assert states(app, acme.tenant_id) == {(ADA, acme.id): ("opted_out", "keyword")}
    deliver(app, client, said(acme, "Başla", timestamp=str(now)))
    assert states(app, acme.tenant_id) == {(ADA, acme.id): ("opted_in", "keyword")}
    assert history(app, acme.tenant_id) == [(ADA, "opted_out", "keyword", None, "İptal"),
                                            (ADA, "opted_in", "keyword", "opted_out", "Başla")]
    with app.app_context():
        contact = db.session.scalar(select(Contact).where(Contact.tenant_id == acme.tenant_id))
        assert (contact.wa_id, contact.name, contact.country) == (ADA, "Ada Lovelace", "US")
        db.session.remove()


def test_a_templates_quick_reply_button_counts_and_other_messages_do_not(app, client, whatsapp, acme):
    deliver(app, client, said(acme, "Can you stop by at five?"))
    assert states(app, acme.tenant_id) == {}
    deliver(app, client, said(acme, "Stop promotions", kind="button"))
    assert states(app, acme.tenant_id) == {(ADA, acme.id): ("opted_out", "keyword")}


def test_the_same_message_again_and_a_late_stop_change_nothing(app, client, whatsapp, acme):
    now = int(time.time())
    stop = said(acme, "STOP", timestamp=str(now - 5), message_id="wamid.stop-1")
    deliver(app, client, stop)
    deliver(app, client, stop)  # WhatsApp repeats the webhook
    deliver(app, client, said(acme, "START", timestamp=str(now)))
    deliver(app, client, stop)  # and again, after the contact wrote START: older news
    assert states(app, acme.tenant_id) == {(ADA, acme.id): ("opted_in", "keyword")}
    assert [kind for _, kind, *_ in history(app, acme.tenant_id)] == ["opted_out", "opted_in"]


def test_a_tenants_own_list_replaces_the_defaults(app, client, whatsapp, acme):
    with app.app_context():
        keywords.replace_keywords(db.session, acme.tenant_id, [("Hayır", "opted_out"), ("Evet", "opted_in")])
        db.session.commit()
        db.session.remove()
    deliver(app, client, said(acme, "STOP"))
    assert states(app, acme.tenant_id) == {}
    deliver(app, client, said(acme, "HAYIR"))
    assert states(app, acme.tenant_id) == {(ADA, acme.id): ("opted_out", "keyword")}


def test_keywords_of_one_tenant_are_not_anothers(app, client, whatsapp, acme):
    with app.app_context():
        other = wa.add_live_number(make_tenant("pro").id, waba_id="102290129340399")
        keywords.replace_keywords(db.session, other.tenant_id, [("HAYIR", "opted_out")])
        db.session.commit()
        db.session.remove()
    deliver(app, client, said(acme, "STOP"))
    deliver(app, client, said(other, "STOP"))
    assert states(app, acme.tenant_id) == {(ADA, acme.id): ("opted_out", "keyword")}
    assert states(app, other.tenant_id) == {}


@pytest.mark.parametrize("entries, problem", [
    ([("START", "opted_in")], "Keep at least one opt-out keyword"),
    ([("STOP", "opted_out"), ("stop!", "opted_out")], "in the list twice"),
    ([("İPTAL", "opted_out"), ("iptal", "opted_in")], "in the list twice"),
    ([("x" * 41, "opted_out")], "at most 40 characters"),
    ([("STOP\x00", "opted_out")], "Control characters"),
    ([("!!!", "opted_out")], "needs a letter or a digit"),
    ([("STOP", "maybe")], "must be opted_out or opted_in"),
    ([(f"W{n}", "opted_out") for n in range(51)], "At most 50 keywords"),
])
def test_a_bad_list_is_refused_with_why(entries, problem):
    with pytest.raises(keywords.KeywordError) as refused:
        keywords.checked(entries)
    assert problem in refused.value.message
