"""flask events: the outbox of domain events (saas.events)."""
from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

events_cli = AppGroup("events", help="Domain events not yet taken by their consumers.")


@events_cli.command("sweep")
@click.option("--older-than", type=float, default=None,
              help="Seconds an event must have waited (default: the sweep's own, which leaves younger events to "
                   "the process that published them).")
def events_sweep_command(older_than):
    """Deliver events left in the outbox by a crash, and failed ones due again (every process does it on its own)."""
    from saas import events

    kwargs = {} if older_than is None else {"older_than": timedelta(seconds=older_than)}
    click.echo(f"Delivered {events.sweep(**kwargs)} events.")


@events_cli.command("dead")
@click.option("--limit", type=int, default=100, show_default=True)
def events_dead_command(limit):
    """List events given up on after their last try (a consumer failed on each), oldest first."""
    from saas import outbox
    from saas.extensions import db

    for row in outbox.dead(db.session, limit=limit):
        click.echo(f"{row.id}\t{row.type}\t{row.stream}\tdead {row.dead_at:%Y-%m-%d %H:%M}\towed by {row.owed}\t"
                   f"{row.last_error}")
