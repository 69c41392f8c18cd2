"""The portal's Exports page: the range form and a download per export, the same CSV as the API; the plan's
gate on the page and on every download; a range that names no dates shown next to its field; another
tenant's rows never in a file. (Who may open it: tests/portal/test_team_permissions.py.)"""
from __future__ import annotations

import pytest

from saas.exports.services import KINDS
from saas.extensions import db
from tests.exports.helpers import DAY1, cost, message, rows_of
from tests.factories import make_tenant

RANGE = "from=2026-11-02&to=2026-11-03"


def _tenant(app, plan: str, email: str) -> int:
    with app.app_context():
        tenant_id = make_tenant(plan, email=email).id
        db.session.remove()
    return tenant_id


def test_the_page_offers_each_export_over_the_range_and_downloads_it(app, client, auth):
    tenant_id = _tenant(app, "pro", "owner@exports.example.com")
    other_id = _tenant(app, "pro", "owner@other.example.com")
    with app.app_context():
        mine = message(tenant_id, DAY1)
        cost(tenant_id, mine, DAY1, estimated=25000, confirmed=None)
        message(other_id, DAY1)
        db.session.commit()
        db.session.remove()
    auth.login("owner@exports.example.com")
    page = client.get(f"/exports?{RANGE}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for name in KINDS:
        assert f'href="/exports/{name}.csv?from=2026-11-02&amp;to=2026-11-03"' in text
    answer = client.get(f"/exports/messages.csv?{RANGE}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = rows_of(answer)
    assert rows[0][0] == "id" and [r[0] for r in rows[1:]] == [str(mine)] and rows[1][11] == "0.025"
    assert rows_of(client.get(f"/exports/usage.csv?{RANGE}"))[0] == list(KINDS["usage"].columns)


def test_a_bad_range_is_shown_next_to_its_field(app, client, auth):
    _tenant(app, "pro", "owner@exports.example.com")
    auth.login("owner@exports.example.com")
    for path in ("/exports?from=2026-02-30", "/exports/orders.csv?from=2026-02-30"):
        answer = client.get(path)
        assert answer.status_code == 400
        text = answer.get_data(as_text=True)
        assert 'id="range-from-error"' in text and 'aria-invalid="true"' in text
    assert client.get("/exports/nothing.csv").status_code == 404


@pytest.mark.parametrize("path", ["/exports"] + [f"/exports/{name}.csv" for name in KINDS])
def test_without_the_feature_the_page_and_every_download_offer_the_upgrade(app, client, auth, path):
    _tenant(app, "free", "owner@free.example.com")
    auth.login("owner@free.example.com")
    answer = client.get(path)
    assert answer.status_code == 403
    text = answer.get_data(as_text=True)
    assert 'id="exports-not-in-plan"' in text and 'id="upgrade-link"' in text
    assert answer.mimetype == "text/html"
