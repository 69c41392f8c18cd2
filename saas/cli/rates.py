"""flask commands for what WhatsApp charges: rates (load a card, load charging rules, list cards) and
usage reconcile (our billable counts against Meta's pricing objects)."""
from __future__ import annotations

import os
import sys
from datetime import date, timedelta

import click
from flask.cli import AppGroup

from saas.cli.billing import usage_cli
from saas.costs import cards
from saas.costs.reconcile import reconcile
from saas.timeutil import utcnow

rates_cli = AppGroup("rates", help="Meta's rate cards and charging rules.")

# A rate card of every market and tier is a few hundred rows; anything far larger is not one.
MAX_FILE_BYTES = 1_000_000


class Day(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


DAY = Day()


def _text_of(path: str) -> str:
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise click.ClickException(f"{path} is larger than {MAX_FILE_BYTES} bytes: not a rate card.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text.") from None


def _refused(exc: cards.CardError) -> click.ClickException:
    return click.ClickException("the file was refused, nothing was loaded:\n  " + "\n  ".join(exc.errors))


@rates_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--effective", type=DAY, help="The date the card takes effect (else its '# effective:' line).")
@click.option("--source", help="Where the rates come from (else its '# source:' line).")
def rates_load_command(path, effective, source):
    """Load the rate card in PATH (Meta's layout: see the README), replacing a card of the same date."""
    from saas.extensions import db

    try:
        card = cards.load_card(db.session, _text_of(path), effective=effective, source=source,
                               filename=os.path.basename(path), uploaded_by="flask rates load")
    except cards.CardError as exc:
        raise _refused(exc) from None
    click.echo(f"Loaded the {card.currency} card in force from {card.effective_from:%Y-%m-%d} ({card.source}).")


@rates_cli.command("rules")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--effective", type=DAY, help="The date the rules take effect (else its '# effective:' line).")
def rates_rules_command(path, effective):
    """Load the charging rules in PATH (category, context, charged), replacing a set of the same date."""
    from saas.extensions import db

    try:
        count = cards.load_rules(db.session, _text_of(path), effective=effective)
    except cards.CardError as exc:
        raise _refused(exc) from None
    click.echo(f"Loaded {count} charging rules.")


@rates_cli.command("list")
def rates_list_command():
    """List the stored cards, newest first."""
    from saas.extensions import db

    found = cards.cards(db.session)
    if not found:
        click.echo("No rate card loaded: messages get no cost estimate.")
    for card in found:
        click.echo(f"{card.effective_from:%Y-%m-%d}  {card.currency}  {card.source}  "
                   f"(uploaded {card.uploaded_at:%Y-%m-%d %H:%M} by {card.uploaded_by or '?'})")


@usage_cli.command("reconcile")
@click.option("--date", "day", type=DAY, help="One day's messages (UTC); default yesterday.")
@click.option("--since", type=DAY, help="Messages from this day through today.")
def usage_reconcile_command(day, since):
    """Compare our billable message counts per tenant and category with the pricing objects Meta sent;
    list the differences and exit 1 on any."""
    from saas.extensions import db

    if day is not None and since is not None:
        raise click.UsageError("give --date or --since, not both")
    today = utcnow().date()
    first, last = (since, today) if since is not None else ((day, day) if day else (today - timedelta(days=1),) * 2)
    if first > last:
        raise click.UsageError("--since is after today")
    differences = reconcile(db.session, first, last)
    span = f"{first:%Y-%m-%d}" + (f" to {last:%Y-%m-%d}" if last != first else "")
    if not differences:
        click.echo(f"OK: our billable counts equal Meta's pricing for messages sent {span}.")
        return
    click.echo(f"{len(differences)} differences for messages sent {span}:")
    for difference in differences:
        click.echo(f"  {difference}")
    sys.exit(1)
