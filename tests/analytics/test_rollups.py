"""The daily roll-ups: kept by the domain events in sets, equal to what the message rows say (the rebuild
recomputes them from the rows), each status counted once however often and in whatever order WhatsApp
sends it, and each message's cost in the day it was sent, priced by that day's card."""
from __future__ import annotations

from datetime import date, datetime

from saas.analytics.rebuild import rebuild
from saas.extensions import db
from tests.analytics.conftest import counted, failures, figures, make_shop, send, status, statuses
from tests.costs.conftest import pricing
from tests.statements import statements_on

DAY1, DAY2 = datetime(2025, 9, 1, 10), datetime(2025, 9, 2, 23, 59)


def rebuilt(app, since=None):
    with app.app_context():
        rebuild(db.session, since)
        db.session.remove()


def test_repeated_and_out_of_order_statuses_count_once_and_the_rollups_equal_the_rows(priced, whatsapp, client):
    shop = make_shop(priced)
    read_twice, wamid1 = send(priced, shop, at=DAY1, opened=True)
    backwards, wamid2 = send(priced, shop, at=DAY1)
    undelivered, wamid3 = send(priced, shop, at=DAY1, category="utility")
    _, wamid4 = send(priced, shop, at=DAY2, category="utility", opened=True)
    send(priced, shop, at=DAY2, refused_code=131049)
    # Delivered three times, then read; read before delivered, then a late "sent"; failed twice.
    statuses(priced, client, shop, [status(wamid1, "delivered"), status(wamid1, "delivered")])
    statuses(priced, client, shop, [status(wamid1, "delivered"), status(wamid1, "read"), status(wamid2, "read")])
    statuses(priced, client, shop, [status(wamid2, "delivered"), status(wamid2, "sent"),
                                    status(wamid3, "failed", code=131026)])
    statuses(priced, client, shop, [status(wamid3, "failed", code=131026), status(wamid4, "sent"),
                                    status(wamid1, "read")])
    n = shop.number.id
    kept = figures(priced, shop.tenant_id)
    assert [row[1:11] for row in kept] == [
        # day, number, category, market, currency, sent, delivered, read, failed, conversations
        (date(2025, 9, 1), n, "marketing", "Argentina", "USD", 2, 2, 2, 0, 1),
        (date(2025, 9, 1), n, "utility", "Argentina", "USD", 1, 0, 0, 1, 0),
        (date(2025, 9, 2), n, "marketing", "", "", 0, 0, 0, 1, 0),
        (date(2025, 9, 2), n, "utility", "Argentina", "USD", 1, 0, 0, 0, 1)]
    kept_failures = failures(priced, shop.tenant_id)
    assert [row[1:] for row in kept_failures] == [(date(2025, 9, 1), n, 131026, 1), (date(2025, 9, 2), n, 131049, 1)]
    assert counted(priced) == 5
    rebuilt(priced)
    assert figures(priced, shop.tenant_id) == kept
    assert failures(priced, shop.tenant_id) == kept_failures
    # A rebuild of the second day only leaves the first as it was, and the second the same.
    rebuilt(priced, date(2025, 9, 2))
    assert figures(priced, shop.tenant_id) == kept


def test_a_message_priced_across_a_card_change_counts_in_its_own_days_cost(priced, whatsapp, client):
    shop = make_shop(priced)
    _, old = send(priced, shop, at=datetime(2025, 12, 31, 23, 59))
    _, new = send(priced, shop, at=datetime(2026, 1, 1, 0, 1))
    by_day = {row[1]: row[-4:] for row in figures(priced, shop.tenant_id)}
    # confirmed count, estimated, confirmed, cost (micros): each day by its own card.
    assert by_day == {date(2025, 12, 31): (0, 61800, 0, 61800), date(2026, 1, 1): (0, 70000, 0, 70000)}
    # Meta confirms the older one as free: that day's cost moves, the other's does not.
    statuses(priced, client, shop, [status(old, "sent", pricing=pricing("marketing", "free_entry_point",
                                                                        billable=False))])
    statuses(priced, client, shop, [status(old, "delivered", pricing=pricing("marketing"))])
    by_day = {row[1]: row[-4:] for row in figures(priced, shop.tenant_id)}
    assert by_day == {date(2025, 12, 31): (1, 61800, 0, 0), date(2026, 1, 1): (0, 70000, 0, 70000)}
    kept = figures(priced, shop.tenant_id)
    rebuilt(priced)
    assert figures(priced, shop.tenant_id) == kept


def test_another_tenants_messages_are_never_in_a_tenants_rows(priced, whatsapp, client):
    shop, other = make_shop(priced), make_shop(priced, waba_id="300000000000009")
    _, mine = send(priced, shop, at=DAY1)
    _, theirs = send(priced, other, at=DAY1)
    # A status naming the other tenant's message arrives on this tenant's number: it names nothing here.
    statuses(priced, client, shop, [status(theirs, "read"), status(mine, "delivered")])
    assert [row[6:9] for row in figures(priced, shop.tenant_id)] == [(1, 1, 0)]
    assert [row[6:9] for row in figures(priced, other.tenant_id)] == [(1, 0, 0)]


def test_a_batch_of_statuses_is_added_in_a_few_statements_whatever_its_size(priced, whatsapp, client):
    shop = make_shop(priced)
    wamids = [send(priced, shop, at=DAY1)[1] for _ in range(12)]
    with statements_on(priced, "analytics_") as seen:
        statuses(priced, client, shop, [status(wamid, "delivered") for wamid in wamids])
    # On PostgreSQL: the lock, the shares read, the roll-ups added, the shares kept (SQLite: no lock).
    assert len(seen) <= 4, seen
    assert [row[6:8] for row in figures(priced, shop.tenant_id)] == [(12, 12)]


def test_the_rebuild_command_recomputes_from_the_rows(priced, whatsapp, client, runner):
    shop = make_shop(priced)
    _, wamid = send(priced, shop, at=DAY1)
    statuses(priced, client, shop, [status(wamid, "read")])
    kept = figures(priced)
    result = runner.invoke(args=["analytics", "rebuild", "--since", "2025-09-01"])
    assert result.exit_code == 0, result.output
    assert "1 messages, 1 daily rows, 0 failure rows" in result.output
    assert figures(priced) == kept
    refused = runner.invoke(args=["analytics", "rebuild", "--since", "2025-13-01"])
    assert refused.exit_code == 2 and "is not a date" in refused.output
