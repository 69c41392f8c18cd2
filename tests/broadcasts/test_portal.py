"""The portal's broadcast pages: build one from a template with variables, confirm its check, watch the
report; steering and export; the plan's gate; another tenant's broadcast is not found."""
from __future__ import annotations

import re

from tests.broadcasts.helpers import Shop, run, sends_to
from tests.conftest import csrf_token


def promo(page: str) -> str:
    """The choice of the live number's promo template on the new broadcast page."""
    return re.search(r'<option value="([0-9]+\|promo\|en_US)"', page).group(1)


def logged_in(auth, shop):
    assert auth.login(shop.email).status_code in (302, 303)


def test_build_confirm_and_watch_a_broadcast(app, client, auth, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(4)
    logged_in(auth, shop)
    page = client.get("/broadcasts/new").get_data(as_text=True)
    pick = promo(page)
    form = client.get(f"/broadcasts/new?pick={pick}")
    assert form.status_code == 200 and 'id="variables"' in form.get_data(as_text=True)
    token = csrf_token(client, f"/broadcasts/new?pick={pick}")
    created = client.post(f"/broadcasts/new?pick={pick}", data={
        "csrf_token": token, "name": "Spring", "labels": "vip", "messages_per_second": "80",
        "v0_source": "name", "v0_default": "there", "v1_source": "attr", "v1_value": "code"})
    assert created.status_code == 303, created.get_data(as_text=True)
    report = client.get(created.headers["Location"]).get_data(as_text=True)
    assert 'id="check-recipients"><strong>4</strong>' in report
    assert "Customer 0" in report
    # No rate card loaded: Meta's cost to Turkey stands in at the plan's price.
    assert '<td data-label="Market">Turkey</td>' in report and "(no rate card: our price)" in report
    token = csrf_token(client, created.headers["Location"])
    client.post(created.headers["Location"] + "/start", data={"csrf_token": token})
    run(app)
    report = client.get(created.headers["Location"]).get_data(as_text=True)
    assert 'id="count-sent">4<' in report and 'id="sends-chart"' in report
    assert "vendor/uplot/uPlot.iife.min.js" in report and re.search(r"data-sends='\[4\]'", report)
    exported = client.get(created.headers["Location"] + "/recipients.csv")
    assert exported.status_code == 200 and exported.get_data(as_text=True).count("\n") == 5
    assert len(sends_to(graph)) == 4


def test_a_field_error_is_shown_next_to_the_form(app, client, auth, graph):
    shop = Shop(app, graph)
    shop.template()
    logged_in(auth, shop)
    pick = promo(client.get("/broadcasts/new").get_data(as_text=True))
    token = csrf_token(client, f"/broadcasts/new?pick={pick}")
    answer = client.post(f"/broadcasts/new?pick={pick}", data={
        "csrf_token": token, "name": "Nobody", "messages_per_second": "80", "v0_source": "name",
        "v1_source": "value", "v1_value": "X"})
    assert answer.status_code == 400
    assert "Say who receives it" in answer.get_data(as_text=True)


def test_the_plan_gate_and_another_tenants_broadcast(app, client, auth, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(1)
    broadcast_id = shop.create()
    starter = Shop(app, graph, plan="starter")
    logged_in(auth, starter)
    refused = client.get("/broadcasts")
    assert refused.status_code == 403 and 'id="upgrade-link"' in refused.get_data(as_text=True)
    auth.logout()
    other = Shop(app, graph)
    logged_in(auth, other)
    assert client.get(f"/broadcasts/{broadcast_id}").status_code == 404
    assert client.get(f"/broadcasts/{broadcast_id}/recipients.csv").status_code == 404
    token = csrf_token(client, "/broadcasts")
    assert client.post(f"/broadcasts/{broadcast_id}/start", data={"csrf_token": token}).status_code == 404
    assert shop.get(broadcast_id)["status"] == "draft"


def test_a_broadcast_being_checked_shows_its_progress_and_updates_itself_until_the_check_is_ready(app, client, auth,
                                                                                                  graph):
    from tests.broadcasts.test_check_job import as_left_by_create

    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3)
    broadcast_id = shop.create()
    as_left_by_create(app, broadcast_id, 3)
    logged_in(auth, shop)
    page = client.get(f"/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert 'id="check-pending"' in page and '<progress id="check-bar" value="0" max="3">' in page
    assert '<meta http-equiv="refresh" content="2">' in page
    assert 'id="confirm-send"' not in page and 'id="cancel-broadcast"' in page
    from saas.broadcasts import check_job
    from saas.extensions import db

    with app.app_context():
        check_job.run(broadcast_id)
        db.session.remove()
    page = client.get(f"/broadcasts/{broadcast_id}").get_data(as_text=True)
    assert 'id="check-recipients"><strong>3</strong>' in page and 'id="confirm-send"' in page
    assert 'http-equiv="refresh"' not in page
