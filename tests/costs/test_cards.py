"""Rate cards and charging rules as dated data: the repository's files load; a bad file is refused with its
rows' errors (CLI and admin console) and stores nothing; the rule in force and the most specific one
applies; each "Rest of" group and the dated moves of the market mapping."""
from __future__ import annotations

import html
import re
from datetime import date

import pytest
from sqlalchemy import func, select

from saas.costs import cards
from saas.costs.markets import market_of
from saas.costs.models import ChargingRule, Rate, RateCard
from saas.costs.prices import Prices
from saas.extensions import db
from saas.tenants import services as accounts
from tests.conftest import AuthActions, csrf_token

HEADER = "market,currency,marketing,utility,authentication,authentication-international,service,tier\n"
BAD_CARD = ("# source: a test\n# effective: 2026-03-01\n" + HEADER +
            "Argentina,USD,0.0618,abc,0.0289,,,\n"
            "Argentina,USD,0.07,0.03,0.03,,,\n"
            "Brazil,usd,0.0625,0.0068,0.0068,,,\n"
            "Chile,USD,0.08,0.02,0.02,,,lots\n"
            "Peru,USD,=1+1,0.02,0.02,,,\n"
            "Mexico,USD,0.03\n")


def stored(app) -> tuple[int, int, int]:
    with app.app_context():
        found = tuple(db.session.scalar(select(func.count()).select_from(model))
                      for model in (RateCard, Rate, ChargingRule))
        db.session.remove()
    return found


def test_the_repositorys_card_and_rules_load(app, runner):
    result = runner.invoke(args=["rates", "load", "data/rates/meta-2025-07-01.csv"])
    assert result.exit_code == 0, result.output
    assert "USD card in force from 2025-07-01" in result.output
    assert runner.invoke(args=["rates", "rules", "data/rates/rules-2025-07-01.csv"]).exit_code == 0
    with app.app_context():
        card = db.session.scalar(select(RateCard))
        assert "developers.facebook.com/docs/whatsapp/pricing" in card.source
        rates = {(r.market, r.category): r.rate_micros for r in db.session.scalars(select(Rate))}
        assert rates[("Rest of Africa", "marketing")] == 22500
        assert rates[("Other", "utility")] == 7700
        db.session.remove()
    listed = runner.invoke(args=["rates", "list"])
    assert "2025-07-01  USD" in listed.output


def test_a_bad_card_is_refused_by_the_cli_with_each_rows_error_and_nothing_stored(app, runner, tmp_path):
    path = tmp_path / "card.csv"
    path.write_text(BAD_CARD, encoding="utf-8")
    result = runner.invoke(args=["rates", "load", str(path)])
    assert result.exit_code == 1
    for expected in ("line 4: utility 'abc' is not a rate", "line 5: Argentina is listed twice",
                     "line 6: currency 'usd' is not a three-letter code", "line 7: tier 'lots' is not a volume range",
                     "line 8: marketing '=1+1' is not a rate", "line 9: 3 cells where the header has 8",
                     "nothing was loaded"):
        assert expected in result.output, result.output
    assert stored(app) == (0, 0, 0)


@pytest.mark.parametrize("text, error", [
    (HEADER + "Argentina,USD,0.06,0.02,0.02,,,\n", "no effective date"),
    ("# effective: 2026-01-01\n" + HEADER + "Argentina,USD,0.06,0.02,0.02,,,\n", "names no source"),
    ("# source: x\n# effective: 2026-01-01\nmarket,currency,marketing\nArgentina,USD,0.06\n", "the columns must be"),
    ("# source: x\n# effective: 2026-01-01\n" + HEADER + "Argentina,USD,0.06,,,,,\nChile,EUR,0.05,,,,,\n",
     "one currency"),
    ("# source: x\n# effective: 2026-01-01\n" + HEADER + "Arg\x00entina,USD,0.06,,,,,\n", "control characters"),
    ("# source: x\n# effective: 2026-01-01\n" + HEADER + ("A" * 61) + ",USD,0.06,,,,,\n", "market must be"),
    ("# source: x\n# effective: 2026-01-01\n" + HEADER, "lists no market"),
])
def test_a_card_without_what_it_needs_is_refused(text, error):
    with pytest.raises(cards.CardError) as refused:
        cards.parse_card(text)
    assert any(error in message for message in refused.value.errors), refused.value.errors


def test_a_source_with_control_characters_is_refused():
    with pytest.raises(cards.CardError) as refused:
        cards.parse_card("# effective: 2026-01-01\n" + HEADER + "Argentina,USD,0.06,,,,,\n", source="Meta\x00")
    assert "the source holds control characters" in refused.value.errors


def test_bad_rules_are_refused_with_their_rows(app, runner, tmp_path):
    path = tmp_path / "rules.csv"
    path.write_text("# source: x\n# effective: 2026-10-01\ncategory,context,charged\nservice,*,maybe\n"
                    "ads,*,yes\nutility,anywhere,no\n", encoding="utf-8")
    result = runner.invoke(args=["rates", "rules", str(path)])
    assert result.exit_code == 1
    assert "line 4: charged 'maybe' is neither yes nor no" in result.output
    assert "line 5: category 'ads'" in result.output and "line 6: context 'anywhere'" in result.output
    assert stored(app) == (0, 0, 0)


def test_the_rule_set_in_force_applies_and_its_most_specific_rule_wins(app):
    with app.app_context():
        with open("data/rates/rules-2025-07-01.csv", encoding="utf-8") as handle:
            cards.load_rules(db.session, handle.read())
        # As reported for 2026-10-01: service and utility inside the window chargeable.
        cards.load_rules(db.session, "# source: test\n# effective: 2026-10-01\ncategory,context,charged\n"
                                     "*,*,yes\n*,free_entry_point,no\n")
        prices = Prices(db.session.connection())
        assert prices.charged(date(2025, 6, 30), "marketing", "outside_window") is None
        july, october = date(2025, 7, 1), date(2026, 10, 1)
        assert prices.charged(july, "utility", "inside_window") is False
        assert prices.charged(july, "utility", "outside_window") is True
        assert prices.charged(july, "marketing", "free_entry_point") is False
        assert prices.charged(july, "service", "inside_window") is False
        assert prices.charged(october, "utility", "inside_window") is True
        assert prices.charged(october, "service", "inside_window") is True
        assert prices.charged(october, "marketing", "free_entry_point") is False
        db.session.remove()


@pytest.mark.parametrize("wa_id, market", [
    ("254712345678", "Rest of Africa"), ("819012345678", "Rest of Asia Pacific"),
    ("48512345678", "Rest of Central & Eastern Europe"), ("59894123456", "Rest of Latin America"),
    ("962791234567", "Rest of Middle East"), ("46701234567", "Rest of Western Europe"), ("16847331234", "Other"),
    ("5491123456789", "Argentina"), ("14155550123", "North America"), ("442071234567", "United Kingdom"),
])
def test_a_recipients_market_comes_from_its_numbers_region(wa_id, market):
    assert market_of(wa_id, date(2025, 7, 1)) == market


def test_a_region_moves_market_on_the_mappings_date():
    # Zimbabwe moved from Other to Rest of Africa on 2025-10-01.
    assert market_of("263771234567", date(2025, 9, 30)) == "Other"
    assert market_of("263771234567", date(2025, 10, 1)) == "Rest of Africa"
    assert market_of("not a number", date(2025, 10, 1)) == "Other"


# -- the admin console's upload ---------------------------------------------------------------

def admin_client(app, client):
    with app.app_context():
        accounts.create_platform_admin("root@ops.example.com", "admin password")
        db.session.remove()
    assert AuthActions(client).login(email="root@ops.example.com", password="admin password").status_code == 302
    return client


def upload(client, text: str, kind: str = "card", **fields):
    from io import BytesIO

    data = {"csrf_token": csrf_token(client, "/admin/rates"), "kind": kind,
            "file": (BytesIO(text.encode()), "card.csv"), **fields}
    return client.post("/admin/rates", data=data, content_type="multipart/form-data")


def field_errors(response) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<small class="field-error" id="file-error">([^<]*)</small>',
                                                 response.get_data(as_text=True))]


def test_an_admin_uploads_a_card_and_bad_rows_come_back_as_form_errors(app, client):
    admin_client(app, client)
    refused = upload(client, BAD_CARD)
    assert refused.status_code == 400
    errors = field_errors(refused)
    assert "line 4: utility 'abc' is not a rate (a number such as 0.0113)" in errors
    assert any(e.startswith("line 9: 3 cells") for e in errors)
    assert stored(app) == (0, 0, 0)
    assert upload(client, "\xff\xfe not csv").status_code == 400
    with open("data/rates/meta-2025-07-01.csv", encoding="utf-8") as handle:
        accepted = upload(client, handle.read(), effective="2025-07-01")
    assert accepted.status_code == 302
    page = client.get("/admin/rates").get_data(as_text=True)
    assert "Loaded the USD card in force from 2025-07-01." in page
    with app.app_context():
        assert db.session.scalar(select(RateCard.uploaded_by)) == "root@ops.example.com"
        db.session.remove()
    with open("data/rates/rules-2025-07-01.csv", encoding="utf-8") as handle:
        assert upload(client, handle.read(), kind="rules").status_code == 302
    assert stored(app)[2] == 7


def test_the_upload_needs_a_file_a_csrf_token_and_a_platform_admin(app, client, auth):
    admin_client(app, client)
    assert "Choose a CSV file." in client.post("/admin/rates", data={
        "csrf_token": csrf_token(client, "/admin/rates"), "kind": "card"}).get_data(as_text=True)
    from io import BytesIO

    forged = client.post("/admin/rates", data={"kind": "card", "file": (BytesIO(BAD_CARD.encode()), "c.csv")},
                         content_type="multipart/form-data")
    assert forged.status_code == 400
    other = app.test_client()
    AuthActions(other).signup()
    AuthActions(other).verify()
    AuthActions(other).login()
    assert other.get("/admin/rates").status_code == 404
