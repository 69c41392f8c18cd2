"""The analytics pages: the tenant's (its own figures only, the plan's usage with its projection, a bad range
shown as a field error), and the admin's across tenants with revenue beside Meta's cost."""
from __future__ import annotations

import re
from datetime import datetime

from saas.analytics.reading import project
from saas.metering.services import Period, UsageSummary
from saas.tenants import services as accounts
from saas.tenants.models import User
from saas.extensions import db
from tests.analytics.conftest import make_shop, send, status, statuses
from tests.conftest import AuthActions

ADMIN = ("root@platform.example.com", "correct horse battery")


def owner_client(app, tenant_id: int):
    with app.app_context():
        email = db.session.query(User.email).filter(User.tenant_id == tenant_id).scalar()
        db.session.remove()
    client = app.test_client()
    assert AuthActions(client).login(email=email).status_code == 302
    return client


def text_of(page) -> str:
    return re.sub(r"\s+", " ", page.get_data(as_text=True))


def test_the_tenant_page_shows_its_own_figures_and_never_another_tenants(priced, whatsapp, client):
    shop, other = make_shop(priced), make_shop(priced, waba_id="300000000000009")
    _, wamid = send(priced, shop, at=datetime(2025, 9, 1, 10), opened=True)
    send(priced, shop, at=datetime(2025, 9, 1, 11), refused_code=131049)
    for _ in range(7):
        send(priced, other, at=datetime(2025, 9, 1, 11), category="utility")
    statuses(priced, client, shop, [status(wamid, "read")])
    page = owner_client(priced, shop.tenant_id).get("/analytics?from=2025-09-01&to=2025-09-07")
    assert page.status_code == 200
    html = text_of(page)
    assert re.search(r'id="total-sent">1<', html) and re.search(r'id="total-read">1<', html)
    assert re.search(r'id="total-failed">1<', html) and re.search(r'id="total-conversations">1<', html)
    assert "USD 0.0618" in html and "131049" in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "js/analytics-chart.js" in html
    assert re.search(r"data-series='[^']*\"sent\": \[1, 0, 0, 0, 0, 0, 0\]", page.get_data(as_text=True))
    # The other tenant's seven utility messages are in its page alone.
    theirs = text_of(owner_client(priced, other.tenant_id).get("/analytics?from=2025-09-01&to=2025-09-07"))
    assert re.search(r'id="total-sent">7<', theirs) and "131049" not in theirs


def test_a_bad_range_is_a_field_error_not_a_failure(priced, client):
    shop = make_shop(priced)
    owner = owner_client(priced, shop.tenant_id)
    for query, field in [("from=2025-02-30", "from"), ("to=%00", "to"), ("from=2020-01-01&to=2025-01-01", "to"),
                         ("number=nope", "number")]:
        page = owner.get(f"/analytics?{query}")
        assert page.status_code == 400, query
        assert f'id="{field}-error"' in page.get_data(as_text=True), query


def test_the_usage_projection_is_linear_from_the_pace_so_far():
    period = Period(datetime(2026, 11, 1), datetime(2026, 12, 1))
    usage = UsageSummary(period, "pro", "Pro", 5000, 1000, False, None, {}, 0)
    assert project(usage, datetime(2026, 11, 7)).projected == 5000   # 1000 in 6 of 30 days
    assert project(usage, datetime(2026, 11, 1)).projected == 1000   # nothing gone yet: what is used


def test_the_admin_sees_every_tenant_with_revenue_beside_meta_cost(priced, whatsapp, client):
    shop, other = make_shop(priced), make_shop(priced, waba_id="300000000000009")
    send(priced, shop, at=datetime(2025, 9, 1, 10))
    for _ in range(2):
        send(priced, other, at=datetime(2025, 9, 2, 10))
    with priced.app_context():
        accounts.create_platform_admin(*ADMIN)
        db.session.remove()
    admin = priced.test_client()
    assert AuthActions(admin).login(email=ADMIN[0], password=ADMIN[1]).status_code == 302
    page = admin.get("/admin/analytics/?from=2025-09-01&to=2025-09-30")
    assert page.status_code == 200
    html = text_of(page)
    assert "<strong>3</strong> sent" in html and "USD 0.1854" in html
    rows = re.findall(r'<td data-label="Sent">(\d+)</td>', html)
    assert rows == ["2", "1"]
    assert "Revenue this period" in html and "USD 29.00" in html
    # Not for tenants: the console is a 404 to them.
    assert owner_client(priced, shop.tenant_id).get("/admin/analytics/").status_code == 404
    assert admin.get("/admin/analytics/?from=nope").status_code == 400
