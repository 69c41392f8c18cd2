"""Each message's cost: estimated when its send settles (the card of its day, its category, the window, the
account's volume tier), confirmed by the first status carrying WhatsApp's pricing object, with the estimate
and the difference kept; every figure the tenant's own."""
from __future__ import annotations

from datetime import datetime

from saas.costs.estimates import INSIDE_WINDOW, OUTSIDE_WINDOW
from tests import whatsapp_payloads as wa
from tests.costs.conftest import ARGENTINA, cost_of, make_shop, post_status, pricing, send
from tests.factories import settle
from tests.statements import statements_on


def test_a_message_is_priced_by_the_card_in_force_on_the_day_it_was_sent(priced):
    shop = make_shop(priced)
    before, _ = send(priced, shop, at=datetime(2025, 12, 31, 23, 59), category="marketing", outside_window=True)
    after, _ = send(priced, shop, at=datetime(2026, 1, 1, 0, 1), category="marketing", outside_window=True)
    old, new = cost_of(priced, shop.tenant_id, before), cost_of(priced, shop.tenant_id, after)
    assert (old.market, old.currency, old.estimated_billable, old.estimated_micros) == ("Argentina", "USD", True, 61800)
    assert (new.estimated_billable, new.estimated_micros) == (True, 70000)
    assert old.card_id != new.card_id


def test_a_message_sent_before_any_card_has_no_estimate(priced):
    shop = make_shop(priced)
    message_id, _ = send(priced, shop, at=datetime(2025, 6, 30, 12), category="marketing", outside_window=True)
    cost = cost_of(priced, shop.tenant_id, message_id)
    assert (cost.card_id, cost.estimated_micros) == (None, None)


def test_utility_is_free_inside_the_window_and_charged_outside_it_marketing_always_service_never(priced):
    shop = make_shop(priced)
    at = datetime(2025, 9, 1, 12)
    cases = {("utility", True): (True, 28900), ("utility", False): (False, 0),
             ("marketing", False): (True, 61800), ("authentication", False): (True, 28900),
             ("service", False): (False, 0)}
    sent = {case: send(priced, shop, at=at, category=case[0], outside_window=case[1])[0] for case in cases}
    for (category, outside), expected in cases.items():
        cost = cost_of(priced, shop.tenant_id, sent[(category, outside)])
        assert cost.context == (OUTSIDE_WINDOW if outside else INSIDE_WINDOW)
        assert (cost.estimated_billable, cost.estimated_micros) == expected, (category, outside)


def test_a_free_entry_point_confirmation_makes_a_charged_estimate_free_and_keeps_the_difference(priced, whatsapp,
                                                                                               client):
    shop = make_shop(priced)
    message_id, wamid = send(priced, shop, at=datetime(2025, 9, 1, 12), category="marketing", outside_window=True)
    post_status(priced, client, shop, wamid, pricing=pricing("marketing", "free_entry_point", billable=False))
    cost = cost_of(priced, shop.tenant_id, message_id)
    assert (cost.estimated_billable, cost.estimated_micros) == (True, 61800)
    assert (cost.confirmed_billable, cost.confirmed_type, cost.confirmed_micros) == (False, "free_entry_point", 0)
    assert cost.difference_micros == -61800


def test_the_confirmation_replaces_the_estimate_once_and_keeps_both(priced, whatsapp, client):
    shop = make_shop(priced)
    at = datetime(2025, 9, 1, 12)
    # Estimated free (utility inside the window); Meta charged it as a regular utility message.
    utility, utility_wamid = send(priced, shop, at=at, category="utility")
    # Estimated at the authentication rate; Meta charged the authentication-international one (no billable field).
    auth, auth_wamid = send(priced, shop, at=at, category="authentication", outside_window=True)
    post_status(priced, client, shop, utility_wamid, pricing=pricing("utility", billable=True))
    post_status(priced, client, shop, auth_wamid, pricing=pricing("authentication_international"))
    cost = cost_of(priced, shop.tenant_id, utility)
    assert (cost.estimated_billable, cost.estimated_micros) == (False, 0)
    assert (cost.confirmed_billable, cost.confirmed_category, cost.confirmed_micros, cost.difference_micros) == (
        True, "utility", 28900, 28900)
    cost = cost_of(priced, shop.tenant_id, auth)
    assert (cost.estimated_micros, cost.confirmed_category, cost.confirmed_micros, cost.difference_micros) == (
        28900, "authentication-international", 50000, 21100)
    # A later status with other pricing changes nothing: the first confirmation stands.
    post_status(priced, client, shop, utility_wamid, name="delivered",
                pricing=pricing("utility", "free_customer_service", billable=False))
    assert cost_of(priced, shop.tenant_id, utility).confirmed_micros == 28900


def test_a_free_customer_service_confirmation_of_a_free_estimate_differs_by_nothing(priced, whatsapp, client):
    shop = make_shop(priced)
    message_id, wamid = send(priced, shop, at=datetime(2025, 9, 1, 12), category="utility")
    post_status(priced, client, shop, wamid, pricing=pricing("utility", "free_customer_service", billable=False))
    cost = cost_of(priced, shop.tenant_id, message_id)
    assert (cost.confirmed_micros, cost.difference_micros) == (0, 0)


def tier_update(region="ARGENTINA", category="UTILITY", tier="1000001:5000000", month="2025-09",
                at=datetime(2025, 9, 10)) -> tuple[str, dict]:
    return "account_update", {"event": "VOLUME_BASED_PRICING_TIER_UPDATE", "volume_tier_info": {
        "effective_month": month, "pricing_category": category, "region": region, "tier": tier,
        "tier_update_time": int((at - datetime(1970, 1, 1)).total_seconds())}}


def post_account_update(app, client, waba_id: str, change):
    body, headers = wa.signed(wa.notification(waba_id, change), wa_secret())
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).status_code == 200
    settle(app)


def wa_secret() -> str:
    from tests.webhooks.test_whatsapp_inbound import SECRET

    return SECRET


def test_the_volume_tier_follows_account_update_from_its_time_within_its_month(priced, whatsapp, client):
    shop = make_shop(priced, waba_id="300000000000001")
    post_account_update(priced, client, shop.number.waba_id, tier_update())
    before, _ = send(priced, shop, at=datetime(2025, 9, 9), category="utility", outside_window=True)
    after, _ = send(priced, shop, at=datetime(2025, 9, 11), category="utility", outside_window=True)
    auth, _ = send(priced, shop, at=datetime(2025, 9, 11), category="authentication", outside_window=True)
    next_month, _ = send(priced, shop, at=datetime(2025, 10, 1, 1), category="utility", outside_window=True)
    assert cost_of(priced, shop.tenant_id, before).estimated_micros == 28900
    tiered = cost_of(priced, shop.tenant_id, after)
    assert (tiered.tier, tiered.estimated_micros) == ("1000001:5000000", 20000)
    assert cost_of(priced, shop.tenant_id, auth).estimated_micros == 28900  # the tier was utility's
    assert cost_of(priced, shop.tenant_id, next_month).tier == ""
    # A higher tier later in the month applies from its own time (the card has no rate for it: the list rate).
    post_account_update(priced, client, shop.number.waba_id,
                        tier_update(tier="5000001:10000000", at=datetime(2025, 9, 20)))
    later, _ = send(priced, shop, at=datetime(2025, 9, 21), category="utility", outside_window=True)
    assert (cost_of(priced, shop.tenant_id, later).tier, cost_of(priced, shop.tenant_id, later).estimated_micros) == (
        "5000001:10000000", 28900)
    assert cost_of(priced, shop.tenant_id, after).estimated_micros == 20000


def test_a_tier_of_another_account_changes_nothing(priced, whatsapp, client):
    shop = make_shop(priced, waba_id="300000000000002")
    other = make_shop(priced, waba_id="300000000000003")
    post_account_update(priced, client, other.number.waba_id, tier_update())
    message_id, _ = send(priced, shop, at=datetime(2025, 9, 11), category="utility", outside_window=True)
    assert cost_of(priced, shop.tenant_id, message_id).estimated_micros == 28900


def test_a_failed_send_gets_no_cost(priced):
    shop = make_shop(priced)
    message_id, _ = send(priced, shop, at=datetime(2025, 9, 1), category="marketing", outcome="failed")
    assert cost_of(priced, shop.tenant_id, message_id) is None


def test_a_status_naming_another_tenants_message_confirms_nothing(priced, whatsapp, client):
    mine = make_shop(priced, waba_id="300000000000004")
    theirs = make_shop(priced, waba_id="300000000000005")
    message_id, wamid = send(priced, mine, at=datetime(2025, 9, 1), category="marketing", outside_window=True)
    post_status(priced, client, theirs, wamid, pricing=pricing("marketing", "free_entry_point", billable=False))
    cost = cost_of(priced, mine.tenant_id, message_id)
    assert (cost.confirmed_at, cost.confirmed_micros) == (None, None)
    assert cost_of(priced, theirs.tenant_id, message_id) is None


def test_an_estimate_is_made_once_whatever_comes_again(priced):
    from saas.costs import estimates
    from saas.extensions import db

    shop = make_shop(priced)
    message_id, _ = send(priced, shop, at=datetime(2025, 9, 1), category="marketing", outside_window=True)
    with priced.app_context():
        assert estimates.estimate(db.session.connection(), [(shop.tenant_id, message_id)]) == 0
        db.session.remove()
    assert cost_of(priced, shop.tenant_id, message_id).estimated_micros == 61800
    assert ARGENTINA


def test_without_a_card_costs_want_no_event_and_tiers_are_still_kept(app, whatsapp, client):
    from sqlalchemy import func, select

    from saas.costs import cards
    from saas.costs.consumers import priced
    from saas.costs.models import PricingTier
    from saas.extensions import db
    from tests.costs.conftest import CARD_2025

    shop = make_shop(app, waba_id="300000000000009")
    post_account_update(app, client, shop.number.waba_id, tier_update())
    message_id, _ = send(app, shop, at=datetime(2025, 9, 11), category="utility", outside_window=True)
    assert cost_of(app, shop.tenant_id, message_id) is None
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PricingTier)) == 1
        assert priced(db.session.connection(), {shop.tenant_id}) == set()
        db.session.remove()
        # A card stored in this process is seen at once.
        cards.load_card(db.session, CARD_2025)
        assert priced(db.session.connection(), {shop.tenant_id}) == {shop.tenant_id}
        db.session.remove()


def test_a_sandbox_numbers_messages_get_no_cost(priced, client):
    """Sent through the API on the sandbox number: Meta never sees them, so nothing is estimated or reconciled."""
    from sqlalchemy import func, select

    from saas.costs.models import MessageCost
    from saas.extensions import db
    from tests.factories import sender

    shop = sender(client, "starter")
    response = shop.send(to=ARGENTINA)
    assert response.status_code == 200, response.get_data(as_text=True)
    settle(priced)
    with priced.app_context():
        assert db.session.scalar(select(func.count()).select_from(MessageCost)) == 0
        db.session.remove()


def test_pricing_fields_postgresql_could_not_store_are_dropped_not_crashed(priced, whatsapp, client):
    shop = make_shop(priced)
    message_id, wamid = send(priced, shop, at=datetime(2025, 9, 1, 12), category="marketing", outside_window=True)
    post_status(priced, client, shop, wamid, pricing={"pricing_model": "PMP", "category": "market\x00ing" * 10,
                                                      "type": "regular\x00", "billable": True})
    cost = cost_of(priced, shop.tenant_id, message_id)
    assert (cost.confirmed_billable, cost.confirmed_category, cost.confirmed_type) == (True, None, None)


def test_a_batch_of_settled_sends_costs_the_same_few_statements_as_one(priced):
    """Estimates are written in sets: 1 or 40 sends settled in one delivery run the same statements."""
    from saas import events
    from saas.extensions import db
    from saas.messaging.domain_events import send_settled
    from saas.messaging.models import Message

    def statements():
        return statements_on(priced, r"\b(message_costs|rates|rate_cards|charging_rules|pricing_tiers)\b")

    shop = make_shop(priced)

    def settle_many(count: int) -> list:
        with priced.app_context():
            rows = [Message(tenant_id=shop.tenant_id, phone_number_id=shop.number.id, direction="out",
                            wa_id=f"54911234{n:05d}", type="template", body_summary="hi", status="accepted",
                            category="marketing", business_initiated=True, created_at=datetime(2025, 9, 1),
                            updated_at=datetime(2025, 9, 1)) for n in range(count)]
            db.session.add_all(rows)
            db.session.flush()
            events.publish(db.session.connection(), [send_settled(shop.tenant_id, row.id, row.wa_id, "accepted")
                                                     for row in rows])
            ids = [row.id for row in rows]
            with statements() as seen:
                events.commit(db.session)
            db.session.remove()
        assert all(cost_of(priced, shop.tenant_id, i).estimated_micros == 61800 for i in ids)
        return seen

    def per_batch(seen: list) -> list:
        # Whether any card is stored is read at most once per cache bound, whichever batch comes first.
        return [statement for statement in seen if not statement.startswith("SELECT rate_cards.id \nFROM rate_cards")]

    one, many = per_batch(settle_many(1)), per_batch(settle_many(40))
    assert len(many) == len(one) <= 7, many
