"""The portal's contacts pages: list, search, label filter, bulk labels, create, edit, delete, attributes,
the two-step import with its progress and refused rows, the export, roles and tenant isolation."""
from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from saas.contacts.models import Contact
from saas.extensions import db
from tests.conftest import AuthActions, csrf_token
from tests.factories import make_tenant, settle

PASSWORD = "correct horse battery"


@pytest.fixture
def owner(app, client):
    with app.app_context():
        tenant = make_tenant("starter", email="owner@contacts.example.com", password=PASSWORD)
        tenant_id = tenant.id
        db.session.remove()
    assert AuthActions(client).login("owner@contacts.example.com", PASSWORD).status_code == 302
    client.tenant_id = tenant_id
    return client


def page(response) -> str:
    return response.get_data(as_text=True)


def post(client, path, data, *, form_page=None, **kwargs):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page or path), **data}, **kwargs)


def new_contact(client, wa_id, name="", labels="", **attrs):
    return post(client, "/contacts/new", {"wa_id": wa_id, "name": name, "labels": labels,
                                          **{f"attr-{k}": v for k, v in attrs.items()}})


def contact_id(app, wa_id) -> int:
    with app.app_context():
        found = db.session.scalar(select(Contact.id).where(Contact.wa_id == wa_id))
        db.session.remove()
    return found


def test_the_nav_leads_to_contacts_and_a_contact_is_created_shown_edited_and_deleted(app, owner):
    assert 'href="/contacts">Contacts</a>' in page(owner.get("/dashboard"))
    assert "No contacts yet" in page(owner.get("/contacts"))
    created = new_contact(owner, "+90 532 123 45 67", "Ayşe Yılmaz", "VIP; izmir")
    assert created.status_code == 302
    cid = contact_id(app, "905321234567")
    shown = page(owner.get(created.headers["Location"]))
    assert "Ayşe Yılmaz" in shown and "+905321234567" in shown and ">vip</a>" in shown and ">izmir</a>" in shown
    assert "created" in shown  # the history
    edited = post(owner, f"/contacts/{cid}/edit", {"name": "Ayşe Y.", "labels": "vip"})
    assert edited.status_code == 302
    shown = page(owner.get(f"/contacts/{cid}"))
    assert "Ayşe Y." in shown and ">izmir</a>" not in shown and "Ayşe Yılmaz → Ayşe Y." in shown
    assert "Delete the contact" in page(owner.get(f"/contacts/{cid}/delete"))
    deleted = post(owner, f"/contacts/{cid}/delete", {})
    assert deleted.status_code == 302 and contact_id(app, "905321234567") is None


def test_bad_fields_are_shown_next_to_them(app, owner):
    post(owner, "/contacts/attributes", {"key": "points", "type": "number"})
    response = new_contact(owner, "12", "Ayşe", points="12")
    assert response.status_code == 400 and 'id="wa_id-error">Not a phone number' in page(response)
    assert 'value="12"' in page(response)  # what was typed stays in the form
    too_long = new_contact(owner, "905321234569", "x" * 201)
    assert too_long.status_code == 400 and 'id="name-error"' in page(too_long)
    new_contact(owner, "905321234567")
    again = new_contact(owner, "905321234567", points="many")
    assert again.status_code == 400 and 'id="attr-points-error">A number' in page(again)
    fixed = new_contact(owner, "905321234568", points="12.5")
    assert fixed.status_code == 302
    duplicate = new_contact(owner, "+90 532 123 45 68")
    assert duplicate.status_code == 409 and "You have this contact already" in page(duplicate)


def test_search_label_filter_and_bulk_labels(app, owner):
    for n, (name, labels) in enumerate([("Ali", "vip"), ("Veli", ""), ("Ayşe", "vip")]):
        new_contact(owner, f"90532123456{n}", name, labels)
    listed = page(owner.get("/contacts?label=VIP"))
    assert "Ali" in listed and "Ayşe" in listed and "Veli" not in listed
    assert "Veli" in page(owner.get("/contacts?q=vel")) and "Ali" not in page(owner.get("/contacts?q=vel"))
    assert "Ali" in page(owner.get("/contacts?q=%2B90 532 123 4560"))
    assert "cannot be searched" in page(owner.get("/contacts?q=a%00b"))
    ids = [contact_id(app, "905321234561"), contact_id(app, "905321234562")]
    response = post(owner, "/contacts/labels", {"label": "Spring Sale", "action": "add", "contact_ids": ids,
                                               "back": "/contacts?q=v"}, form_page="/contacts")
    assert response.status_code == 302 and response.headers["Location"] == "/contacts?q=v"
    assert "“spring sale” added to 2 contacts." in page(owner.get("/contacts"))
    assert "Veli" in page(owner.get("/contacts?label=spring+sale"))
    post(owner, "/contacts/labels", {"label": "vip", "action": "remove", "contact_ids": ids}, form_page="/contacts")
    assert "Ayşe" not in page(owner.get("/contacts?label=vip"))
    refused = post(owner, "/contacts/labels", {"label": "a/b", "action": "add", "contact_ids": ids},
                   form_page="/contacts", follow_redirects=True)
    assert "A label is 1 to 50 letters" in page(refused)


def test_attributes_are_defined_shown_and_removed(app, owner):
    assert post(owner, "/contacts/attributes", {"key": "birthday", "type": "date"}).status_code == 302
    bad = post(owner, "/contacts/attributes", {"key": "Birth Day", "type": "date"})
    assert bad.status_code == 400 and 'id="key-error"' in page(bad)
    new_contact(owner, "905321234567", "Ayşe", birthday="1990-02-28")
    assert "1990-02-28" in page(owner.get(f"/contacts/{contact_id(app, '905321234567')}"))
    removed = post(owner, "/contacts/attributes/birthday/remove", {}, form_page="/contacts/attributes")
    assert removed.status_code == 302
    assert "1990-02-28" not in page(owner.get(f"/contacts/{contact_id(app, '905321234567')}"))


def test_an_import_is_mapped_runs_and_lists_its_refused_rows(app, owner):
    post(owner, "/contacts/attributes", {"key": "city", "type": "text"})
    content = "Telefon;Ad Soyad;Şehir;Etiket\n+90 532 111 11 11;Ayşe;İzmir;vip|new\nnot a number;X;;\n"
    uploaded = post(owner, "/contacts/import", {"file": (io.BytesIO(content.encode()), "liste.csv")},
                    content_type="multipart/form-data")
    assert uploaded.status_code == 302, page(uploaded)
    mapping_page = page(owner.get(uploaded.headers["Location"]))
    assert "What does each column hold?" in mapping_page
    # Known names are chosen already; the city column is the tenant's to map.
    assert re.search(r'id="column-0".*?<option value="wa_id" selected', mapping_page, re.S)
    path = uploaded.headers["Location"]
    unmapped = post(owner, f"{path}/mapping", {"column-0": "", "column-1": "name"}, form_page=path)
    assert unmapped.status_code == 400 and "Map one column to wa_id" in page(unmapped)
    started = post(owner, f"{path}/mapping", {"column-0": "wa_id", "column-1": "name", "column-2": "attr:city",
                                              "column-3": "labels"}, form_page=path)
    assert started.status_code == 302
    settle(app)
    progress = page(owner.get(path))
    assert 'data-status="done"' in progress and 'http-equiv="refresh"' not in progress
    assert re.search(r'id="import-created">1<', progress) and re.search(r'id="import-failed">1<', progress)
    errors = list(csv.DictReader(io.StringIO(page(owner.get(f"{path}/errors.csv")))))
    assert [(e["row"], e["raw"]) for e in errors] == [("3", "not a number,X,,")]
    shown = page(owner.get(f"/contacts/{contact_id(app, '905321111111')}"))
    assert "İzmir" in shown and ">new</a>" in shown


def test_a_running_import_refreshes_itself(app, owner):
    from saas.contacts.models import ContactImport

    with app.app_context():
        row = ContactImport(tenant_id=owner.tenant_id, filename="big.csv", content=b"wa_id\n1\n", status="running",
                            total_rows=10, processed_rows=4, mapping={"wa_id": "wa_id"})
        db.session.add(row)
        db.session.commit()
        import_id = row.id
        db.session.remove()
    html = page(owner.get(f"/contacts/import/{import_id}"))
    assert '<meta http-equiv="refresh" content="2">' in html and '<progress id="import-bar" value="4" max="10">' in html
    assert "Content-Security-Policy" in owner.get(f"/contacts/import/{import_id}").headers


def test_unreadable_uploads_are_refused_on_the_form(owner):
    response = post(owner, "/contacts/import", {"file": (io.BytesIO(b"\xff\xfe\x00x"), "x.csv")},
                    content_type="multipart/form-data")
    assert response.status_code == 400 and "UTF-16" in page(response)
    missing = post(owner, "/contacts/import", {}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "Choose the CSV file" in page(missing)
    opt_in = post(owner, "/contacts/import", {"file": (io.BytesIO(b"wa_id\n905321111111\n"), "x.csv"), "opt_in": "y"},
                  content_type="multipart/form-data")
    assert opt_in.status_code == 400 and "opted in to" in page(opt_in)


def test_the_export_keeps_the_lists_filters(owner):
    new_contact(owner, "905321234567", "Ali", "vip")
    new_contact(owner, "905321234568", "Veli", "")
    listed = page(owner.get("/contacts?label=vip"))
    assert 'href="/contacts/export.csv?label=vip"' in listed
    rows = list(csv.DictReader(io.StringIO(page(owner.get("/contacts/export.csv?label=vip")))))
    assert [row["name"] for row in rows] == ["Ali"]


def test_another_tenants_contact_and_import_are_not_found(app, owner, client):
    with app.app_context():
        other = make_tenant("starter")
        theirs = Contact(tenant_id=other.id, wa_id="905321234567", attributes={}, source="api")
        db.session.add(theirs)
        db.session.commit()
        theirs_id = theirs.id
        db.session.remove()
    for path in (f"/contacts/{theirs_id}", f"/contacts/{theirs_id}/edit", f"/contacts/{theirs_id}/delete"):
        assert owner.get(path).status_code == 404
    assert post(owner, f"/contacts/{theirs_id}/delete", {}, form_page="/contacts").status_code == 404
    assert "905321234567" not in page(owner.get("/contacts?q=9053"))


def test_the_billing_role_does_not_see_contacts(app, client):
    from saas.tenants.models import ROLE_BILLING, User

    with app.app_context():
        tenant = make_tenant("starter", email="boss@contacts.example.com", password=PASSWORD)
        user = db.session.scalar(select(User).where(User.tenant_id == tenant.id))
        user.role = ROLE_BILLING
        db.session.commit()
        db.session.remove()
    AuthActions(client).login("boss@contacts.example.com", PASSWORD)
    assert client.get("/contacts").status_code == 403
    assert 'href="/contacts">' not in page(client.get("/billing"))
