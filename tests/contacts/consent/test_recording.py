"""Recording consent: each change kept in the contact's history, a repeat recording nothing, and the import's
set-based opt-in that never overrides an opt-out."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from saas.contacts import directory
from saas.contacts.consent import records
from saas.contacts.models import Consent, ContactEvent
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.timeutil import utcnow
from tests.contacts.consent.conftest import history, states
from tests.factories import make_tenant

ADA, BEN, CEM = "16505551234", "16505559876", "16505550000"


@pytest.fixture
def acme(app):
    """A tenant, its sandbox number's id and three contacts of it, in an app context."""
    with app.app_context():
        tenant = make_tenant("pro")
        contacts = [directory.find_or_create(db.session, tenant.id, wa_id=w)[0] for w in (ADA, BEN, CEM)]
        db.session.commit()
        yield tenant.id, numbers_for(tenant)[0].id, contacts
        db.session.remove()


def test_each_change_is_kept_and_a_repeat_records_nothing(app, acme):
    tenant_id, number_id, (ada, *_) = acme
    changes = [records.opt_in(db.session, tenant_id, ada, number_id, source="form", actor="web form",
                              proof="Checked 'WhatsApp offers' on /signup"),
               records.opt_in(db.session, tenant_id, ada, number_id, source="api", proof="again"),
               records.opt_out(db.session, tenant_id, ada.id, number_id, source="portal", actor="owner@acme"),
               records.opt_out(db.session, tenant_id, ada.id, number_id, source="keyword", proof="STOP"),
               records.opt_in(db.session, tenant_id, ada, number_id, source="api", proof="Re-subscribed by phone")]
    db.session.commit()
    assert changes == [True, False, True, False, True]
    assert history(app, tenant_id) == [
        (ADA, "opted_in", "form", None, "Checked 'WhatsApp offers' on /signup"),
        (ADA, "opted_out", "portal", "opted_in", None),
        (ADA, "opted_in", "api", "opted_out", "Re-subscribed by phone")]
    assert states(app, tenant_id) == {(ADA, number_id): ("opted_in", "api")}


def test_a_contacts_own_stale_change_is_not_applied_but_a_tenants_always_is(app, acme):
    tenant_id, number_id, (ada, ben, _) = acme
    now = utcnow()
    assert records.opt_out(db.session, tenant_id, ada, number_id, source="whatsapp", at=now - timedelta(minutes=1))
    assert not records.opt_in(db.session, tenant_id, ada, number_id, source="keyword",
                              at=now - timedelta(minutes=2))  # said before the stop
    assert records.opt_in(db.session, tenant_id, ada, number_id, source="api", proof="Signed form #88")
    # A stop the contact sent before the tenant's opt-in still applies: an opt-out from the contact wins.
    assert records.opt_out(db.session, tenant_id, ada, number_id, source="keyword", at=now - timedelta(minutes=3))
    # The same second: the opt-out wins.
    assert records.opt_out(db.session, tenant_id, ben, number_id, source="keyword", at=now)
    assert not records.opt_in(db.session, tenant_id, ben, number_id, source="keyword", at=now)
    db.session.commit()
    assert states(app, tenant_id) == {(ADA, number_id): ("opted_out", "keyword"),
                                      (BEN, number_id): ("opted_out", "keyword")}


def test_proof_and_actor_are_bounded_to_their_columns(app, acme):
    tenant_id, number_id, (ada, *_) = acme
    records.opt_in(db.session, tenant_id, ada, number_id, source="api", actor="a" * 500, proof="p\x00" * 800)
    db.session.commit()
    row = db.session.scalar(select(Consent))
    assert (len(row.actor), len(row.proof), "\x00" in row.proof) == (200, 800, False)


def test_the_import_opts_in_a_set_and_never_overrides_an_opt_out(app, acme):
    tenant_id, number_id, (ada, ben, cem) = acme
    records.opt_out(db.session, tenant_id, ben, number_id, source="keyword", proof="STOP")
    records.opt_in(db.session, tenant_id, cem, number_id, source="form", proof="Paper form")
    db.session.commit()
    stranger_id = make_tenant("pro").id
    theirs = directory.find_or_create(db.session, stranger_id, wa_id=ADA)[0].id
    db.session.commit()

    done = records.record_import_opt_in(db.session, tenant_id, [ada.id, ben.id, cem.id, theirs, ada.id], number_id,
                                        "Imported from the shop's newsletter list (double opt-in)", "import #4")
    db.session.commit()
    again = records.record_import_opt_in(db.session, tenant_id, [ada.id], number_id, "again", "import #5")
    db.session.commit()

    assert done == records.ImportedConsent(opted_in=1, already_opted_in=1, kept_opted_out=1)
    assert again == records.ImportedConsent(opted_in=0, already_opted_in=1, kept_opted_out=0)
    assert states(app, tenant_id) == {(ADA, number_id): ("opted_in", "import"),
                                      (BEN, number_id): ("opted_out", "keyword"),
                                      (CEM, number_id): ("opted_in", "form")}
    assert history(app, tenant_id)[-1] == (ADA, "opted_in", "import", None,
                                           "Imported from the shop's newsletter list (double opt-in)")
    assert states(app, stranger_id) == {}
    with pytest.raises(ValueError):
        records.record_import_opt_in(db.session, stranger_id, [theirs], number_id, "x", "import #6")


def test_the_import_opt_in_writes_in_sets(app, acme):
    tenant_id, number_id, _ = acme
    many = [directory.find_or_create(db.session, tenant_id, wa_id=f"4477009{n:05d}")[0].id for n in range(1200)]
    db.session.commit()
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        done = records.record_import_opt_in(db.session, tenant_id, many, number_id, "List", "import #1")
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert done.opted_in == 1200
    assert db.session.scalar(select(func.count()).select_from(ContactEvent).where(
        ContactEvent.tenant_id == tenant_id, ContactEvent.kind == "opted_in")) == 1200
    # Two chunks of at most 1,000: a handful of statements each, never one per contact.
    assert len(statements) < 25, len(statements)
