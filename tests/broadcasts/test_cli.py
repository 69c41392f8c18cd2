"""flask broadcasts: run, tick, throughput."""
from __future__ import annotations

import multiprocessing
import os

from saas.broadcasts.models import NumberPacing
from saas.extensions import db
from tests.broadcasts.helpers import Shop, sends_to
from tests.broadcasts.processes import run_command
from tests.broadcasts.test_crash import database_url


def test_run_sends_what_is_running_and_tick_starts_nothing_not_due(app, runner, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3)
    shop.call("start", shop.create())
    ticked = runner.invoke(args=["broadcasts", "tick"])
    assert "Started: 0; recovered: 0" in ticked.output
    app.config["BROADCAST_PACING"] = False  # paced, the worker would wait for its tokens
    try:
        result = runner.invoke(args=["broadcasts", "run", "--until-idle"])
    finally:
        app.config["BROADCAST_PACING"] = True
    assert result.exit_code == 0, result.output
    assert len(sends_to(graph)) == 3


def test_the_worker_lowers_its_own_cpu_priority_and_sends_all_the_same(app, graph):
    shop = Shop(app, graph)
    shop.template()
    shop.contacts(3)
    shop.call("start", shop.create())
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=run_command, args=(database_url(app), graph.url, 7, out))
    child.start()
    output, niceness = out.get(timeout=120)
    child.join(timeout=30)
    assert "Recipients claimed: 3" in output
    assert niceness == min(os.nice(0) + 7, 19)
    assert len(sends_to(graph)) == 3


def test_throughput_sets_a_numbers_rate_within_whatsapps_range(app, runner, graph):
    shop = Shop(app, graph)
    assert runner.invoke(args=["broadcasts", "throughput", shop.phone_number_id, "1000"]).exit_code == 0
    with app.app_context():
        assert db.session.get(NumberPacing, shop.number_pk).messages_per_second == 1000
        db.session.remove()
    assert runner.invoke(args=["broadcasts", "throughput", shop.phone_number_id, "1001"]).exit_code != 0
    assert runner.invoke(args=["broadcasts", "throughput", "404", "80"]).exit_code != 0


def test_every_process_ticks_broadcasts_in_its_housekeeping_thread(base_app):
    from saas import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": base_app.config["SQLALCHEMY_DATABASE_URI"],
                      "HOUSEKEEPING": True, "BROADCAST_TICK_SECONDS": 3.0})
    tasks = {name: seconds for name, seconds, *_ in app.extensions["background"]._tasks}
    assert tasks["broadcasts"] == 3.0
    assert app.config["BROADCAST_BATCH"] == 100 and app.config["BROADCAST_IN_WEB"] is True
