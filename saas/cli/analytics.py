"""flask analytics rebuild: the daily roll-ups recomputed from the message rows (saas.analytics.rebuild)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from saas.analytics.rebuild import rebuild
from saas.cli.rates import DAY

analytics_cli = AppGroup("analytics", help="The analytics pages' daily roll-ups.")


@analytics_cli.command("rebuild")
@click.option("--since", type=DAY, help="Recompute the days from this one (UTC, YYYY-MM-DD); else every day.")
def analytics_rebuild_command(since):
    """Recompute the daily roll-ups from the message rows (a backfill; the events keep them up to date)."""
    from saas.extensions import db

    done = rebuild(db.session, since)
    start = f"from {since:%Y-%m-%d}" if since else "of every day"
    click.echo(f"Rebuilt the roll-ups {start}: {done.messages} messages, {done.rows} daily rows, "
               f"{done.failure_rows} failure rows.")
