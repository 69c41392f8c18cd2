"""flask broadcasts: the broadcast worker (run), the tick (start what is due, recover dead workers'
claims), and a number's throughput."""
from __future__ import annotations

import logging
import signal
import time

import click
from flask import current_app
from flask.cli import AppGroup

from saas.broadcasts.models import MAX_RATE, NumberPacing
from saas.broadcasts.runner import tick
from saas.broadcasts.worker import runner_for, worker_runner
from saas.extensions import db
from saas.messaging.models import PhoneNumber

log = logging.getLogger(__name__)
RESTART_SECONDS = 1.0
broadcasts_cli = AppGroup("broadcasts", help="Send broadcasts: the worker, the tick, numbers' throughput.")


@broadcasts_cli.command("run")
@click.option("--until-idle", is_flag=True, help="Stop once nothing is left to send now.")
def run_command(until_idle):
    """Send running broadcasts, paced per number, until SIGTERM or SIGINT (the Procfile's broadcasts); on cores
    wanted by others, and while others are at work in the database, it gives way (BROADCAST_WORKER_NICE,
    BROADCAST_YIELD_SHARE, BROADCAST_BUSY_SHARE)."""
    stopping = []
    before = {sig: signal.signal(sig, lambda *_: stopping.append(True)) for sig in (signal.SIGTERM, signal.SIGINT)}
    runner = worker_runner(current_app)
    claimed = 0
    try:
        while not stopping:
            try:
                claimed += runner.run(until_idle=until_idle, stop=lambda: bool(stopping),
                                      tick_every=current_app.config["BROADCAST_TICK_SECONDS"])
                break
            except Exception:
                # The database went away, say: what was claimed stays `sending` until recovery settles it.
                log.exception("broadcast worker pass failed; starting again")
                db.session.rollback()
                time.sleep(RESTART_SECONDS)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    click.echo(f"Recipients claimed: {claimed}")


@broadcasts_cli.command("tick")
def tick_command():
    """Start the scheduled broadcasts that are due; settle claims a stopped worker left."""
    runner = runner_for(current_app)
    done = tick(db.session, recover_after=runner.recover_after)
    click.echo(f"Started: {done['started']}; recovered: {done['recovered']}")


@broadcasts_cli.command("throughput")
@click.argument("phone_number_id")
@click.argument("per_second", type=click.IntRange(1, MAX_RATE))
def throughput_command(phone_number_id, per_second):
    """Let PHONE_NUMBER_ID (Meta's id) send PER_SECOND messages a second (WhatsApp's throughput: 80, up to 1,000)."""
    number = db.session.query(PhoneNumber).filter_by(phone_number_id=phone_number_id).one_or_none()
    if number is None:
        raise click.ClickException("No such number.")
    row = db.session.get(NumberPacing, number.id) or NumberPacing(phone_number_id=number.id, tenant_id=number.tenant_id)
    row.messages_per_second = per_second
    db.session.add(row)
    db.session.commit()
    click.echo(f"{number.display_number}: {per_second} messages a second.")
