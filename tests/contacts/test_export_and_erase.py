"""CSV export (streamed, read back by an import) and erasure that keeps what was billed."""
from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from saas.contacts.models import Contact
from saas.extensions import db
from saas.messaging.models import Conversation, Message
from saas.metering.models import UsageCounter
from tests.factories import sender, settle, usage_values


def test_the_export_streams_every_contact_with_labels_and_attributes(app, client):
    acme = sender(client, "enterprise")
    acme.client.post("/api/v1/contacts/attributes", json={"key": "city", "type": "text"}, headers=acme.headers)
    acme.client.post("/api/v1/contacts/attributes", json={"key": "balance", "type": "number"}, headers=acme.headers)
    formula = '"=HYPERLINK(""x"")"'
    lines = ["wa_id,name,labels,attr:city,attr:balance"] + [
        f"9053{n:08d},{formula if n == 0 else f'P{n}'},{'vip' if n % 2 else ''},{'İzmir' if n == 5 else ''},"
        f"{'-12.5' if n == 11 else ''}" for n in range(1203)]  # more than one batch of the export
    started = acme.client.post("/api/v1/contacts/import", headers=acme.headers, content_type="multipart/form-data",
                               data={"file": (io.BytesIO("\n".join(lines).encode()), "c.csv")})
    settle(app)
    assert acme.get(started.headers["Location"]).get_json()["created"] == 1203
    response = acme.get("/api/v1/contacts/export?label=vip")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="contacts.csv"'
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 601 and rows[0]["wa_id"] == "905300000001" and rows[0]["labels"] == "vip"
    assert rows[2]["attr:city"] == "İzmir"
    assert rows[5]["attr:balance"] == "-12.5"  # a number, negative too, is no formula
    everyone = list(csv.DictReader(io.StringIO(acme.get("/api/v1/contacts/export").get_data(as_text=True))))
    assert len(everyone) == 1203
    assert everyone[0]["name"] == "'=HYPERLINK(\"x\")"  # a spreadsheet shows it, never runs it

    # What an export writes, an import reads back.
    other = sender(client, "enterprise")
    other.client.post("/api/v1/contacts/attributes", json={"key": "city", "type": "text"}, headers=other.headers)
    data = {"file": (io.BytesIO(acme.get("/api/v1/contacts/export?label=vip").get_data()), "contacts.csv")}
    started = other.client.post("/api/v1/contacts/import", data=data, headers=other.headers,
                                content_type="multipart/form-data")
    assert started.status_code == 202, started.get_json()
    settle(app)
    state = other.get(started.headers["Location"]).get_json()
    assert (state["created"], state["failed"]) == (601, 0)
    assert other.get("/api/v1/contacts?q=905300000005").get_json()["data"][0]["attributes"] == {"city": "İzmir"}


def test_erasing_a_contact_keeps_its_messages_and_usage(app, client):
    acme = sender(client, "starter")
    contact = acme.client.post("/api/v1/contacts", json={"wa_id": "15551234567", "name": "Ayşe"},
                               headers=acme.headers).get_json()
    assert acme.send(to="15551234567").status_code == 200
    settle(app)
    before = usage_values(app, acme.tenant_id)
    with app.app_context():
        counts = [db.session.scalar(select(func.count()).select_from(m)) for m in (Message, Conversation,
                                                                                    UsageCounter)]
        db.session.remove()
    assert acme.client.delete(f"/api/v1/contacts/{contact['id']}", headers=acme.headers).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 0
        assert [db.session.scalar(select(func.count()).select_from(m)) for m in (Message, Conversation,
                                                                                  UsageCounter)] == counts
        assert db.session.scalar(select(Message.wa_id)) == "15551234567"
        db.session.remove()
    assert usage_values(app, acme.tenant_id) == before and before
