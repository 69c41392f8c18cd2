"""/api/v1/contacts: create, read, update, erase, list with filters and cursor pages, labels in bulk, typed
attributes, the plan's limit, and tenant isolation."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from saas.audit.models import AuditEvent
from saas.billing.catalog import plan_by_code
from saas.contacts.models import Contact, ContactEvent, ContactLabel
from saas.extensions import db
from tests.factories import sender


@pytest.fixture
def acme(client):
    return sender(client, "starter")


def create(api, **body):
    return api.client.post("/api/v1/contacts", json=body, headers=api.headers)


def patch(api, contact_id, **body):
    return api.client.patch(f"/api/v1/contacts/{contact_id}", json=body, headers=api.headers)


def define(api, key, kind):
    response = api.client.post("/api/v1/contacts/attributes", json={"key": key, "type": kind}, headers=api.headers)
    assert response.status_code == 201, response.get_json()
    return response


def history(app, contact_id) -> list[tuple[str, str, dict]]:
    with app.app_context():
        rows = db.session.scalars(select(ContactEvent).where(ContactEvent.contact_id == contact_id)
                                  .order_by(ContactEvent.id)).all()
        result = [(row.kind, row.source, row.detail) for row in rows]
        db.session.remove()
    return result


def test_a_contact_is_created_read_changed_and_listed(app, acme):
    response = create(acme, wa_id="+90 532 123 45 67", name="Ayşe Yılmaz", labels=["VIP", "izmir"])
    assert response.status_code == 201, response.get_json()
    contact = response.get_json()
    assert response.headers["Location"] == f"/api/v1/contacts/{contact['id']}"
    assert (contact["wa_id"], contact["name"], contact["country"], contact["labels"], contact["source"]) == (
        "905321234567", "Ayşe Yılmaz", "TR", ["izmir", "vip"], "api")
    assert acme.get(f"/api/v1/contacts/{contact['id']}").get_json() == contact

    changed = patch(acme, contact["id"], name="Ayşe Y.", labels=["vip", "spring-sale"]).get_json()
    assert (changed["name"], changed["labels"]) == ("Ayşe Y.", ["spring-sale", "vip"])
    kinds = [(kind, detail) for kind, _, detail in history(app, contact["id"])]
    assert kinds == [("created", {}), ("labelled", {"added": ["spring-sale"], "removed": ["izmir"]}),
                     ("updated", {"changes": {"name": ["Ayşe Yılmaz", "Ayşe Y."]}})]
    listed = acme.get("/api/v1/contacts").get_json()
    assert [c["id"] for c in listed["data"]] == [contact["id"]] and listed["has_more"] is False


def test_a_second_contact_with_the_same_number_is_a_conflict(acme):
    first = create(acme, wa_id="905321234567").get_json()
    again = create(acme, wa_id="+90 (532) 123-45-67")
    assert again.status_code == 409
    assert again.get_json()["error"] == {"code": "contact_exists", "message": again.get_json()["error"]["message"],
                                         "details": {"contact_id": first["id"]}}


@pytest.mark.parametrize("body, field", [
    ({}, "wa_id"),
    ({"wa_id": "12"}, "wa_id"),
    ({"wa_id": "+90 532 123 45 67 89 01 23"}, "wa_id"),
    ({"wa_id": "905321234567", "name": "x" * 201}, "name"),
    ({"wa_id": "905321234567", "name": "a\u202eb"}, "name"),
    ({"wa_id": "905321234567", "labels": ["-bad"]}, "labels"),
    ({"wa_id": "905321234567", "labels": ["a/b"]}, "labels"),
    ({"wa_id": "905321234567", "attributes": {"nope": 1}}, "attributes.nope"),
    ({"user_id": "has space"}, "user_id"),
])
def test_bad_fields_are_refused_with_the_field_named(acme, body, field):
    response = create(acme, **body)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["details"], response.get_json()


def test_nul_anywhere_is_refused(acme):
    response = create(acme, wa_id="905321234567", name="a\x00b")
    assert response.status_code == 400
    assert acme.get("/api/v1/contacts?q=a%00b").status_code == 400


def test_typed_attributes_are_checked_against_their_definitions(app, acme):
    for key, kind in (("city", "text"), ("points", "number"), ("member", "boolean"), ("birthday", "date")):
        define(acme, key, kind)
    contact = create(acme, wa_id="905321234567",
                     attributes={"city": "İzmir", "points": 12.0, "member": True, "birthday": "1990-02-28"}).get_json()
    assert contact["attributes"] == {"city": "İzmir", "points": 12, "member": True, "birthday": "1990-02-28"}
    for bad in ({"points": "12"}, {"member": "yes"}, {"birthday": "1990-02-30"}, {"city": "x" * 501},
                {"points": 1e300}):
        response = patch(acme, contact["id"], attributes=bad)
        assert response.status_code == 400, bad
        assert list(response.get_json()["error"]["details"]) == [f"attributes.{next(iter(bad))}"]
    changed = patch(acme, contact["id"], attributes={"points": 13, "city": None}).get_json()
    assert changed["attributes"] == {"points": 13, "member": True, "birthday": "1990-02-28"}
    assert history(app, contact["id"])[-1][2] == {"changes": {"attributes.city": ["İzmir", None],
                                                              "attributes.points": [12, 13]}}
    assert acme.client.post("/api/v1/contacts/attributes", json={"key": "city", "type": "text"},
                            headers=acme.headers).status_code == 400
    assert [a["key"] for a in acme.get("/api/v1/contacts/attributes").get_json()["data"]] == [
        "city", "points", "member", "birthday"]

    removed = acme.client.delete("/api/v1/contacts/attributes/member", headers=acme.headers)
    assert removed.get_json() == {"key": "member", "object": "contact_attribute", "deleted": True, "contacts": 1}
    assert acme.get(f"/api/v1/contacts/{contact['id']}").get_json()["attributes"] == {
        "points": 13, "birthday": "1990-02-28"}
    assert acme.client.delete("/api/v1/contacts/attributes/member", headers=acme.headers).status_code == 404


def make_many(api, count, **extra):
    ids = []
    for n in range(count):
        response = create(api, wa_id=f"+90 532 000 {n:04d}", name=f"Person {n}", **extra)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def test_the_list_pages_by_cursor_and_keeps_its_filters(acme):
    ids = make_many(acme, 5, labels=["vip"])
    make_many_other = create(acme, wa_id="4915112345678", name="Jonas", labels=["berlin"]).get_json()["id"]
    page = acme.get("/api/v1/contacts?limit=2&label=VIP").get_json()
    seen = [c["id"] for c in page["data"]]
    while page["has_more"]:
        assert "label=vip" in page["next"]
        page = acme.get(page["next"]).get_json()
        seen += [c["id"] for c in page["data"]]
    assert seen == sorted(ids, reverse=True)
    assert [c["id"] for c in acme.get("/api/v1/contacts?country=de").get_json()["data"]] == [make_many_other]
    assert [c["id"] for c in acme.get("/api/v1/contacts?q=jon").get_json()["data"]] == [make_many_other]
    assert [c["id"] for c in acme.get("/api/v1/contacts?q=%2B49 151").get_json()["data"]] == [make_many_other]
    assert len(acme.get("/api/v1/contacts?q=person").get_json()["data"]) == 5
    assert acme.get("/api/v1/contacts?q=50%25").get_json()["data"] == []
    assert acme.get("/api/v1/contacts?created_since=2999-01-01T00:00:00Z").get_json()["data"] == []
    assert len(acme.get("/api/v1/contacts?created_since=2000-01-01").get_json()["data"]) == 6


def test_has_attribute_filters_on_a_held_value(acme):
    define(acme, "city", "text")
    held = create(acme, wa_id="905321234567", attributes={"city": "Ankara"}).get_json()["id"]
    create(acme, wa_id="905321234568")
    assert [c["id"] for c in acme.get("/api/v1/contacts?has_attribute=city").get_json()["data"]] == [held]


def test_labels_change_in_bulk_and_each_changed_contact_gets_history(app, acme, client):
    ids = make_many(acme, 3, labels=["old"])
    other = sender(client, "starter")
    foreign = create(other, wa_id="905321234567").get_json()["id"]
    response = acme.client.post("/api/v1/contacts/labels", headers=acme.headers, json={
        "contact_ids": ids + [foreign, 10**12], "add": ["New", "vip"], "remove": ["old"]})
    assert response.get_json() == {"contacts": 3, "added": 6, "removed": 3, "not_found": 2}
    for contact_id in ids:
        assert acme.get(f"/api/v1/contacts/{contact_id}").get_json()["labels"] == ["new", "vip"]
        assert history(app, contact_id)[-1] == ("labelled", "api", {"added": ["new", "vip"], "removed": ["old"]})
    assert other.get(f"/api/v1/contacts/{foreign}").get_json()["labels"] == []
    assert acme.get("/api/v1/contacts/labels").get_json() == {"data": [{"label": "new", "contacts": 3},
                                                                        {"label": "vip", "contacts": 3}]}
    again = acme.client.post("/api/v1/contacts/labels", headers=acme.headers,
                             json={"contact_ids": ids, "add": ["vip"]}).get_json()
    assert again == {"contacts": 0, "added": 0, "removed": 0, "not_found": 0}


def test_another_tenants_contact_is_not_found_everywhere(acme, client):
    other = sender(client, "starter")
    theirs = create(other, wa_id="905321234567", name="Theirs").get_json()["id"]
    assert acme.get(f"/api/v1/contacts/{theirs}").status_code == 404
    assert patch(acme, theirs, name="Mine now").status_code == 404
    assert acme.client.delete(f"/api/v1/contacts/{theirs}", headers=acme.headers).status_code == 404
    assert acme.get("/api/v1/contacts").get_json()["data"] == []
    assert acme.get("/api/v1/contacts?q=theirs").get_json()["data"] == []
    # The same number is a contact of each tenant on its own.
    assert create(acme, wa_id="905321234567").status_code == 201
    assert other.get(f"/api/v1/contacts/{theirs}").get_json()["name"] == "Theirs"


def test_the_plans_contact_limit_refuses_with_the_upgrade_link(app, client):
    with app.app_context():
        plan_by_code("starter").max_contacts = 2
        db.session.commit()
    acme = sender(client, "starter")
    make_many(acme, 2)
    refused = create(acme, wa_id="905321234599")
    assert refused.status_code == 402
    error = refused.get_json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"metric": "contacts", "quota": 2, "stored": 2}
    assert error["upgrade_url"].endswith("/billing")
    assert "at most 2 contacts" in error["message"]


def test_erasing_a_contact_removes_its_personal_data_and_audits_without_it(app, acme):
    contact = create(acme, wa_id="905321234567", name="Ayşe", labels=["vip"]).get_json()
    response = acme.client.delete(f"/api/v1/contacts/{contact['id']}", headers=acme.headers)
    assert response.get_json() == {"id": contact["id"], "object": "contact", "deleted": True}
    assert acme.get(f"/api/v1/contacts/{contact['id']}").status_code == 404
    with app.app_context():
        assert db.session.scalars(select(Contact)).all() == []
        assert db.session.scalars(select(ContactLabel)).all() == []
        assert db.session.scalars(select(ContactEvent)).all() == []
        entry = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.erased"))
        assert entry.tenant_id == acme.tenant_id and entry.details["contact_id"] == contact["id"]
        assert "905321234567" not in repr((entry.summary, entry.details)) and "Ayşe" not in entry.summary
        db.session.remove()
