"""The check's price estimate: Meta's rate per market from the card in force on the day the broadcast goes,
beside what our plan bills; the plan's price where no card covers a market; every tenant's own tiers."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from saas.costs import cards
from saas.costs.models import PricingTier
from saas.extensions import db
from tests.broadcasts.helpers import Shop
from tests.broadcasts.test_check import set_plan

# Turkey and Argentina listed, "Other" left out: a third market has no rate.
CARD_2025 = """# source: test card after Meta's of 2025-07-01
# effective: 2025-07-01
market,currency,marketing,utility,authentication,authentication-international,service,tier
Turkey,USD,0.0109,0.0053,0.0083,,,
Turkey,USD,0.0100,,,,,1000001:5000000
Argentina,USD,0.0618,0.0289,0.0289,,,
"""
CARD_2099 = """# source: test card of 2099-01-01
market,currency,marketing,utility,authentication,authentication-international,service,tier
Turkey,USD,0.0200,0.0060,0.0090,,,
Argentina,USD,0.0700,0.0300,0.0300,,,
"""
ARGENTINE = "549112345"   # + 4 digits: Buenos Aires mobiles
GERMAN = "4915112345"     # + 3 digits: German mobiles (the market "Germany", not on the test cards)


@pytest.fixture
def carded(app):
    set_plan(app, overage_cents=5, included_conversations=0)
    with app.app_context():
        with open("data/rates/rules-2025-07-01.csv", encoding="utf-8") as handle:
            cards.load_rules(db.session, handle.read())
        cards.load_card(db.session, CARD_2025)
        cards.load_card(db.session, CARD_2099, effective=date(2099, 1, 1))
        db.session.remove()
    return app


def estimate_of(shop: Shop, **data) -> dict:
    return shop.get(shop.create(**data))["check"]["estimate"]


def test_each_market_shows_its_rate_times_its_recipients_beside_the_plans_price(carded, graph):
    shop = Shop(carded, graph)
    shop.template()
    shop.contacts(3)
    shop.contacts(2, start=100, prefix=ARGENTINE, digits=4)
    estimate = estimate_of(shop)
    turkey, argentina = estimate["by_country"]["TR"], estimate["by_country"]["AR"]
    assert (turkey["market"], turkey["recipients"], turkey["cost_cents"]) == ("Turkey", 3, "15")
    assert turkey["meta"] == {"priced_by": "rate_card", "currency": "usd", "unit_price_cents": "1.09",
                              "cost_cents": "3.27"}
    assert (argentina["market"], argentina["meta"]["unit_price_cents"], argentina["meta"]["cost_cents"]) == \
        ("Argentina", "6.18", "12.36")
    meta = estimate["meta"]
    assert (meta["card_effective_from"], meta["context"], meta["charged"]) == ("2025-07-01", "outside_window", True)
    assert meta["total_cents"] == {"usd": "15.63"}
    assert (estimate["units"], estimate["billable_units"], estimate["total_cents"]) == (5, 5, "25")


def test_a_utility_template_is_priced_at_its_own_categorys_rate(carded, graph):
    shop = Shop(carded, graph)
    shop.template(name="receipt", category="UTILITY", components=[{"type": "BODY", "text": "Thanks"}])
    shop.contacts(4)
    estimate = estimate_of(shop, template={"name": "receipt", "language": "en_US"}, variables={})
    assert estimate["category"] == "utility"
    assert estimate["by_country"]["TR"]["meta"]["cost_cents"] == "2.12"


def test_the_card_in_force_on_the_scheduled_day_prices_the_broadcast(carded, graph):
    shop = Shop(carded, graph)
    shop.template()
    shop.contacts(2)
    now = estimate_of(shop)
    later = estimate_of(shop, schedule={"at": "2099-03-28T09:00", "timezone": "Europe/Berlin"})
    assert (now["meta"]["card_effective_from"], now["by_country"]["TR"]["meta"]["cost_cents"]) == ("2025-07-01", "2.18")
    assert later["meta"]["priced_on"] == "2099-03-28"
    assert (later["meta"]["card_effective_from"], later["by_country"]["TR"]["meta"]["cost_cents"]) == \
        ("2099-01-01", "4")


def test_a_market_no_card_covers_falls_back_to_the_plans_price(carded, graph):
    shop = Shop(carded, graph)
    shop.template()
    shop.contacts(2)
    shop.contacts(3, start=100, prefix=GERMAN, digits=3)
    estimate = estimate_of(shop)
    germany = estimate["by_country"]["DE"]
    assert (germany["market"], germany["recipients"]) == ("Germany", 3)
    assert germany["meta"] == {"priced_by": "plan", "currency": "usd", "unit_price_cents": "5", "cost_cents": "15"}
    assert estimate["by_country"]["TR"]["meta"]["priced_by"] == "rate_card"
    assert estimate["meta"]["total_cents"] == {"usd": "17.18"}


def test_before_any_card_every_market_is_priced_at_the_plans_price(app, graph):
    set_plan(app, overage_cents=5, included_conversations=0)
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(2)
    estimate = estimate_of(shop)
    assert estimate["meta"]["card_effective_from"] is None
    assert estimate["by_country"]["TR"]["meta"] == {"priced_by": "plan", "currency": "usd", "unit_price_cents": "5",
                                                     "cost_cents": "10"}


def test_a_volume_tier_prices_only_its_own_tenants_broadcasts(carded, graph):
    tiered, other = Shop(carded, graph), Shop(carded, graph)
    month = datetime.utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with carded.app_context():
        # The tier as reported to the tiered tenant, for its account and for the other's (an account it once
        # connected too): only its own checks may use it.
        for waba_id in (tiered.waba_id, other.waba_id):
            db.session.add(PricingTier(tenant_id=tiered.tenant_id, waba_id=waba_id, market_key="TURKEY",
                                       category="marketing", since=month, effective_month=f"{month:%Y-%m}",
                                       tier="1000001:5000000"))
        db.session.commit()
        db.session.remove()
    for shop in (tiered, other):
        shop.template()
        shop.contacts(2)
    assert estimate_of(tiered)["by_country"]["TR"]["meta"]["unit_price_cents"] == "1"
    assert estimate_of(other)["by_country"]["TR"]["meta"]["unit_price_cents"] == "1.09"
