"""Schedules in the tenant's time zone: a daily broadcast keeps its wall-clock time across a
daylight-saving change, and a due one starts at the tick."""
from __future__ import annotations

from datetime import datetime, timedelta

from saas.broadcasts import schedule
from saas.broadcasts.runner import next_run, start_due
from saas.extensions import db
from saas.tenants.services import tenant_snapshot
from tests.broadcasts.helpers import Shop


def test_a_daily_time_stays_on_the_wall_clock_across_a_daylight_saving_change():
    berlin = schedule.zone("Europe/Berlin")
    before = schedule.parse_local("2026-03-28T09:00")   # CET, UTC+1
    after = schedule.next_local(before, "daily")         # CEST from 29 March, UTC+2
    assert schedule.to_utc(before, berlin) == datetime(2026, 3, 28, 8, 0)
    assert schedule.to_utc(after, berlin) == datetime(2026, 3, 29, 7, 0)
    new_york = schedule.zone("America/New_York")
    autumn = schedule.parse_local("2026-10-31T20:30")
    assert schedule.to_utc(schedule.next_local(autumn, "weekly"), new_york) - schedule.to_utc(autumn, new_york) \
        == timedelta(days=7, hours=1)


def test_a_due_recurring_broadcast_starts_and_its_next_run_is_scheduled_after_the_change(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(1)
    broadcast_id = shop.create(schedule={"at": "2099-03-28T09:00", "timezone": "Europe/Berlin",
                                         "recurrence": "daily"})
    shop.call("start", broadcast_id)
    assert shop.get(broadcast_id)["status"] == "scheduled"
    with app.app_context():
        from saas.broadcasts.models import Broadcast

        broadcast = db.session.get(Broadcast, broadcast_id)
        # Its time, as the tick sees it: 09:00 in Berlin on the day before summer time.
        broadcast.schedule_local, broadcast.schedule_at = "2026-03-28T09:00:00", datetime(2026, 3, 28, 8, 0)
        db.session.commit()
        assert start_due(db.session, datetime(2026, 3, 28, 8, 0, 1)) == 1
        runs = db.session.query(Broadcast).filter_by(tenant_id=shop.tenant_id).order_by(Broadcast.id).all()
        assert [b.status for b in runs] == ["running", "scheduled"]
        assert (runs[1].schedule_local, runs[1].schedule_at) == ("2026-03-29T09:00:00", datetime(2026, 3, 29, 7, 0))
        assert runs[1].series_id == broadcast_id
        assert next_run(runs[1], datetime(2026, 4, 2, 12, 0)).schedule_at == datetime(2026, 4, 3, 7, 0)
        assert tenant_snapshot(shop.tenant_id) is not None
        db.session.remove()
