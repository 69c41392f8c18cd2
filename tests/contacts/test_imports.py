"""CSV imports through /api/v1/contacts/import, run by the job machinery: mapped columns, bad rows kept with
why and downloadable, duplicates merged, progress, the plan's limit, files refused whole, a resumed job."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select, update

from saas.billing.catalog import plan_by_code
from saas.contacts import import_job
from saas.contacts.models import Contact, ContactEvent, ContactImport, ContactImportError
from saas.extensions import db
from tests.factories import sender, settle


@pytest.fixture
def acme(client):
    return sender(client, "starter")


def upload(api, content: bytes | str, *, filename="contacts.csv", **fields):
    data = {"file": (io.BytesIO(content.encode() if isinstance(content, str) else content), filename), **fields}
    return api.client.post("/api/v1/contacts/import", data=data, headers=api.headers,
                           content_type="multipart/form-data")


def imported(app, api, content, *, wait: float = 10.0, **fields) -> dict:
    """Upload, wait for the job (at most ``wait`` seconds), and answer the import's final state."""
    response = upload(api, content, **fields)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/api/v1/contacts/import/{response.get_json()['id']}"
    assert app.extensions["background"].join(wait), "the import's job did not finish"
    return api.get(response.headers["Location"]).get_json()


def errors_of(api, state) -> list[dict]:
    response = api.get(state["errors_url"])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def contacts_of(api) -> dict[str, dict]:
    return {c["wa_id"]: c for c in api.get("/api/v1/contacts?limit=100").get_json()["data"]}


CSV = """phone;full name;tags;city;points
+90 532 111 11 11;Ayşe;vip|izmir;İzmir;10
905321111112;Mehmet;;Ankara;x
not a number;Bad;;;
+90 532 111 11 11;;spring;;12
;Nobody;;;

905321111113;Zeynep;-nope;;
"""


def test_a_file_is_imported_with_its_mapping_bad_rows_kept_and_duplicates_merged(app, acme):
    for key, kind in (("city", "text"), ("points", "number")):
        acme.client.post("/api/v1/contacts/attributes", json={"key": key, "type": kind}, headers=acme.headers)
    state = imported(app, acme, CSV, mapping='{"phone": "wa_id", "full name": "name", "tags": "labels", '
                                             '"city": "attr:city", "points": "attr:points"}')
    # The blank line is no row; the others are numbered as a spreadsheet numbers them (the header is row 1).
    assert {k: state[k] for k in ("status", "total_rows", "processed_rows", "created", "merged", "failed")} == {
        "status": "done", "total_rows": 6, "processed_rows": 6, "created": 1, "merged": 1, "failed": 4}
    stored = contacts_of(acme)
    assert set(stored) == {"905321111111"}
    ayse = stored["905321111111"]
    assert (ayse["name"], ayse["labels"], ayse["attributes"], ayse["source"]) == (
        "Ayşe", ["izmir", "spring", "vip"], {"city": "İzmir", "points": 12}, "import")
    assert [(e["row"], e["error"].split(":")[0]) for e in errors_of(acme, state)] == [
        ("3", "attr"), ("4", "wa_id"), ("6", "wa_id"), ("8", "labels")]
    assert errors_of(acme, state)[0]["error"] == "attr:points: A number, such as 42 or 3.5."


def test_rows_merge_with_contacts_stored_before_and_keep_what_the_file_leaves_empty(app, acme):
    acme.client.post("/api/v1/contacts", json={"wa_id": "905321111111", "name": "Ayşe", "labels": ["old"]},
                     headers=acme.headers)
    state = imported(app, acme, "wa_id,name,labels\n905321111111,,new\n905321111112,Ali,\n")
    assert (state["created"], state["merged"], state["failed"]) == (1, 1, 0)
    stored = contacts_of(acme)
    assert (stored["905321111111"]["name"], stored["905321111111"]["labels"]) == ("Ayşe", ["new", "old"])
    with app.app_context():
        kinds = db.session.scalars(select(ContactEvent.kind).join(Contact, Contact.id == ContactEvent.contact_id)
                                   .where(Contact.wa_id == "905321111111").order_by(ContactEvent.id)).all()
        assert kinds == ["created", "imported"]
        db.session.remove()


def test_refused_rows_name_their_row_and_why(app, acme):
    state = imported(app, acme, "wa_id,name\n12,Short\n905321111111,Fine\n,Empty\n905321111112,\"a\x01b\"\n")
    assert (state["created"], state["failed"]) == (1, 3)
    errors = errors_of(acme, state)
    assert [e["row"] for e in errors] == ["2", "4", "5"]
    assert errors[0]["error"].startswith("wa_id: Not a phone number") and errors[0]["raw"] == "12,Short"
    assert errors[1]["error"] == "wa_id: The WhatsApp number is empty."
    assert errors[2]["error"].startswith("name: Control characters")


@pytest.mark.parametrize("content, fields, status, field, words", [
    ("", {}, 400, "file", "empty"),
    ("name\nAyşe\n", {}, 400, "mapping", "Map one column to wa_id"),
    ("wa_id,wa_id\n1,2\n", {}, 400, "file", "appears twice"),
    ("wa_id\n905321111111\n", {"mapping": '{"phone": "wa_id"}'}, 400, "mapping", "no column 'phone'"),
    ("wa_id\n905321111111\n", {"mapping": '{"wa_id": "attr:nope"}'}, 400, "mapping", "not wa_id, name"),
    ("wa_id\n905321111111\n", {"mapping": "[1"}, 400, "mapping", "Not valid JSON"),
    ("wa_id,name\n905321111111,\"open quote\n", {}, 400, "file", "quote left open"),
    ("wa_id\n905321111111\n".encode("utf-16"), {}, 400, "file", "UTF-16"),
    ("wa_id,name\n905321111111,Ay\xfee\n".encode("latin-1"), {}, 400, "file", "not UTF-8"),
    (b"wa_id\n9053\x0021111111\n", {}, 400, "file", "NUL"),
    ("wa_id\n905321111111\n", {"opt_in": "true"}, 400, "phone_number_id", "opted in to"),
])
def test_files_that_cannot_be_read_are_refused_whole_with_a_clear_error(app, acme, content, fields, status, field,
                                                                        words):
    response = upload(acme, content, **fields)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert words in error["details"][field][0], error
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ContactImport)) == 0
        db.session.remove()


def test_a_file_over_the_cap_is_413(app, acme):
    app.config["CONTACT_IMPORT_MAX_BYTES"] = 1000
    try:
        response = upload(acme, "wa_id\n" + "905321111111\n" * 200)
    finally:
        app.config["CONTACT_IMPORT_MAX_BYTES"] = 20 * 1024 * 1024
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_a_file_larger_than_other_requests_may_be_is_taken(app, client):
    acme = sender(client, "enterprise")  # no contact limit
    rows = "".join(f"9053{n:08d},Person {n}\n" for n in range(20000))  # ~460 KB, past MAX_REQUEST_BYTES
    state = imported(app, acme, "wa_id,name\n" + rows)
    assert (state["status"], state["created"], state["processed_rows"]) == ("done", 20000, 20000)


def test_the_plans_limit_stops_new_contacts_but_merges_go_on(app, client):
    with app.app_context():
        plan_by_code("starter").max_contacts = 3
        db.session.commit()
    acme = sender(client, "starter")
    acme.client.post("/api/v1/contacts", json={"wa_id": "905321111111"}, headers=acme.headers)
    state = imported(app, acme, "wa_id,labels\n905321111112,a\n905321111113,a\n905321111114,a\n905321111111,a\n")
    assert (state["created"], state["merged"], state["failed"]) == (2, 1, 1)
    assert errors_of(acme, state)[0]["row"] == "4"
    assert "stores at most 3 contacts" in errors_of(acme, state)[0]["error"]
    assert len(contacts_of(acme)) == 3


def test_an_import_resumes_after_its_worker_died_without_writing_a_row_twice(app, acme):
    response = upload(acme, "wa_id,name\n" + "".join(f"9053{n:08d},P{n}\n" for n in range(2500)))
    import_id = response.get_json()["id"]
    settle(app)
    with app.app_context():
        # As a worker that died after its second batch would leave it: running, its lease over.
        db.session.execute(update(ContactImport).where(ContactImport.id == import_id).values(
            status="running", processed_rows=2000, created_count=2000, lease_until=None,
            content=("wa_id,name\n" + "".join(f"9053{n:08d},P{n}\n" for n in range(2500))).encode(),
            finished_at=None))
        db.session.commit()
        import_job.run(import_id)
        row = db.session.get(ContactImport, import_id)
        assert (row.status, row.processed_rows, row.created_count, row.merged_count) == ("done", 2500, 2000, 500)
        assert row.content is None  # the file is not kept once read
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 2500
        assert db.session.scalar(select(func.count()).select_from(ContactImportError)) == 0
        db.session.remove()


def test_a_worker_that_lost_its_lease_writes_nothing_more_and_a_late_job_does_nothing(app, acme):
    with app.app_context():
        tenant_id = acme.tenant_id
        row = ContactImport(tenant_id=tenant_id, filename="a.csv", content=b"wa_id\n905321111111\n",
                            mapping={"wa_id": "wa_id"}, status="queued", total_rows=1)
        db.session.add(row)
        db.session.commit()
        import_id = row.id
        first = import_job.claim(db.session, import_id)
        assert first is not None and import_job.claim(db.session, import_id) is None  # held: nobody else takes it
        # The first worker stalls past its lease; the sweep's job takes the import over and finishes it.
        db.session.execute(update(ContactImport).where(ContactImport.id == import_id)
                           .values(lease_until=first.replace(year=2000)))
        db.session.commit()
        import_job.run(import_id)
        stalled = import_job.Run(import_id, tenant_id, first.replace(year=2000), [(0, "wa_id")], {}, None, "import")
        with pytest.raises(import_job.LeaseLost):
            import_job._write(db.session, stalled, [(2, ["905321111112"])])
        db.session.rollback()
        assert db.session.scalars(select(Contact.wa_id)).all() == ["905321111111"]
        assert db.session.get(ContactImport, import_id).status == "done"
        import_job.run(import_id)  # a job queued twice finds it done
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 1
        db.session.remove()


def test_another_tenants_import_is_not_found(app, acme, client):
    state = imported(app, acme, "wa_id\n905321111111\n")
    other = sender(client, "starter")
    assert other.get(f"/api/v1/contacts/import/{state['id']}").status_code == 404
    assert other.get(f"/api/v1/contacts/import/{state['id']}/errors").status_code == 404


def test_100000_rows_are_imported_by_the_job(app, client, backend):
    if backend != "postgresql":
        pytest.skip("the 100,000-row run is PostgreSQL's (SQLite proves the same code on smaller files)")
    acme = sender(client, "enterprise")
    body = io.BytesIO()
    body.write(b"wa_id,name,labels\n")
    for n in range(100_000):
        body.write(b"9053%08d,Person %d,%s\n" % (n, n, b"vip" if n % 2 else b"new;izmir"))
    body.write(b"9053%08d,Twice,again\n" % 7)  # merged into row 9
    state = imported(app, acme, body.getvalue(), wait=180)
    assert {k: state[k] for k in ("status", "total_rows", "processed_rows", "created", "merged", "failed")} == {
        "status": "done", "total_rows": 100_001, "processed_rows": 100_001, "created": 100_000, "merged": 1,
        "failed": 0}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 100_000
        db.session.remove()
    assert acme.get("/api/v1/contacts?q=905300000007").get_json()["data"][0]["labels"] == ["again", "vip"]


def test_an_import_that_records_opt_ins_opts_its_contacts_in_and_never_overrides_an_opt_out(app, acme):
    made = acme.client.post("/api/v1/contacts", json={"wa_id": "905321111112", "name": "Mehmet"},
                            headers=acme.headers).get_json()
    said_stop = acme.client.post(f"/api/v1/contacts/{made['id']}/consent", headers=acme.headers, json={
        "phone_number_id": acme.number, "state": "opted_out", "proof": "STOP"})
    assert said_stop.status_code == 200, said_stop.get_json()
    state = imported(app, acme, "wa_id,name\n905321111111,Ayşe\n905321111112,Mehmet\n", opt_in="true",
                     phone_number_id=acme.number, consent_proof="Ticked the box at checkout")
    assert (state["status"], state["created"], state["merged"]) == ("done", 1, 1)
    stored = contacts_of(acme)

    def consent(wa_id):
        body = acme.get(f"/api/v1/contacts/{stored[wa_id]['id']}/consent").get_json()
        (number,) = [n for n in body["numbers"] if n["phone_number_id"] == acme.number]
        return number["state"], number["source"], number["proof"]

    assert consent("905321111111") == ("opted_in", "import", "Ticked the box at checkout")
    assert consent("905321111112")[0] == "opted_out"
