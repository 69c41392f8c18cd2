"""An invoice's overage line links to the usage records behind it: the records of the line's unit past the
plan's included amount, dated in the line's period (as their meter events were). Stripe is the loopback
fake, answering Stripe-shaped invoices through the SDK; another customer's invoice is not found."""
from __future__ import annotations

import html
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from saas.billing.catalog import plan_by_code
from saas.billing.meters import plan_unit
from saas.extensions import db
from saas.timeutil import iso
from tests.billing.test_checkout import owner, subscriber, tenant_of  # noqa: F401  (fixtures)
from tests.exports.helpers import record, rows_of
from tests.factories import make_tenant

START, END = datetime(2026, 11, 1, 14, 5, 7), datetime(2026, 12, 1, 14, 5, 7)


def _overage_line(stripe, invoice: dict, metered_price: str) -> dict:
    [line] = [line for line in invoice["lines"]["data"]
              if line["pricing"]["price_details"]["price"] == metered_price]
    line.update(period={"start": int((START - datetime(1970, 1, 1)).total_seconds()),
                        "end": int((END - datetime(1970, 1, 1)).total_seconds())},
                quantity=2, amount=8, description="WhatsApp conversations past the plan's included ones")
    return line


def _records(app, tenant_id: int, unit: str) -> list[int]:
    """The tenant's records around the line's period; the ids the line charges."""
    other_unit = "messages.marketing" if unit == "conversations" else "conversations"
    metric = "conversations" if unit == "conversations" else "messages.marketing"
    with app.app_context():
        charged = [record(tenant_id, START, metric, overage=True),
                   record(tenant_id, datetime(2026, 11, 20), metric, overage=True)]
        record(tenant_id, datetime(2026, 11, 20), metric, overage=False)       # included in the plan
        record(tenant_id, datetime(2026, 11, 20), other_unit, overage=True)   # another meter's line
        record(tenant_id, datetime(2026, 11, 20), metric, overage=True, voided=True)
        record(tenant_id, datetime(2026, 11, 1, 14, 5, 6), metric, overage=True)  # the period before
        record(tenant_id, END, metric, overage=True)                              # the next period
        stranger = make_tenant("pro")
        record(stranger.id, datetime(2026, 11, 20), metric, overage=True)
        db.session.commit()
        db.session.remove()
    return charged


def test_an_overage_line_links_to_exactly_the_records_it_charges(app, stripe, subscriber):
    tenant = tenant_of(app)
    with app.app_context():
        pro = plan_by_code("pro")
        metered, unit = pro.stripe_metered_price_id, plan_unit(pro)
        db.session.remove()
    [invoice] = stripe.of_kind("invoice")
    _overage_line(stripe, invoice, metered)
    charged = _records(app, tenant.id, unit)
    billing = subscriber.get("/billing").get_data(as_text=True)
    assert f'href="/billing/invoices/{invoice["id"]}"' in billing
    page = subscriber.get(f"/billing/invoices/{invoice['id']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    [href] = re.findall(r'<a href="([^"]+)" class="usage-records">', text)  # the flat fee's line has none
    href = html.unescape(href)
    query = parse_qs(urlsplit(href).query)
    assert urlsplit(href).path == "/exports/usage-records.csv"
    assert query == {"from": [iso(START)], "to": [iso(END)], "unit": [unit], "overage": ["1"]}
    answer = subscriber.get(href)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert [int(row[0]) for row in rows_of(answer)[1:]] == charged


def test_lines_past_those_the_invoice_embeds_are_read_too(app, stripe, subscriber):
    with app.app_context():
        pro = plan_by_code("pro")
        metered = pro.stripe_metered_price_id
        db.session.remove()
    [invoice] = stripe.of_kind("invoice")
    _overage_line(stripe, invoice, metered)
    lines = invoice["lines"]["data"]
    flat = [line for line in lines if line["pricing"]["price_details"]["price"] != metered]
    extra = [dict(flat[0], id=f"il_fakeextra{n:04d}", description=f"Proration {n}") for n in range(12)]
    # Stripe embeds the first lines only: the overage line comes on the second page of /lines.
    invoice["_lines"] = flat + extra + [line for line in lines if line not in flat]
    invoice["lines"] = dict(invoice["lines"], data=invoice["_lines"][:10], has_more=True)
    text = subscriber.get(f"/billing/invoices/{invoice['id']}").get_data(as_text=True)
    assert "Proration 11" in text and text.count('class="usage-records"') == 1
    pages = stripe.requests("GET", f"/v1/invoices/{invoice['id']}/lines")
    assert [call.params.get("starting_after") for call in pages] == [invoice["_lines"][9]["id"]]


def test_another_customers_invoice_is_not_found(app, stripe, subscriber):
    [mine] = stripe.of_kind("invoice")
    theirs = dict(mine, id="in_fakeOther000001", customer=stripe.customer("other@example.com")["id"])
    stripe.store(theirs)
    assert subscriber.get("/billing/invoices/in_fakeOther000001").status_code == 404
    assert subscriber.get("/billing/invoices/in_nothing_here").status_code == 404
    assert subscriber.get("/billing/invoices/not-an-invoice").status_code == 404
    assert subscriber.get(f"/billing/invoices/{mine['id']}").status_code == 200
