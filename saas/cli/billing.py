"""flask commands for Stripe billing upkeep: usage (rollup, check, report), plans sync, billing resync."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup

from saas import logs
from saas.billing import meters, stripe_client
from saas.metering.reconciliation import reconcile
from saas.metering.report_run import units_text
from saas.metering.reporting import UsageReporter

usage_cli = AppGroup("usage", help="Usage counters and the ledger behind them.")
plans_cli = AppGroup("plans", help="The plan catalogue.")
billing_cli = AppGroup("billing", help="Stripe billing upkeep.")


@usage_cli.command("rollup")
def usage_rollup_command():
    """Move every usage entry into the counters now (web processes do it every second)."""
    from saas.extensions import db

    moved = current_app.extensions["metering"].roll_up_all(db.session)
    click.echo(f"Rolled up {moved} usage entries.")


@usage_cli.command("check")
def usage_check_command():
    """Check that every tenant's usage equals its rows (messages sent, windows opened) and that its overage
    was reported, and with Stripe configured that each Billing Meter (conversations, messages) counts what was
    reported of its unit. Exits 1 if not."""
    from saas.extensions import db
    from saas.messaging.outbound.billed import billed_units
    from saas.metering.audit import audit_usage

    problems, checked = audit_usage(db.session, billed_units(db.session))
    for problem in problems:
        click.echo(problem)
    client = stripe_client.client() if stripe_client.configured() else None
    reported = reconcile(db.session, client, event_names=meters.event_names(current_app.config))
    for problem in reported.problems:
        click.echo(problem)
    if not reported.stripe_compared:
        click.echo("Stripe was not compared: STRIPE_SECRET_KEY is not set, so only the local side was checked.")
    if problems or reported.problems:
        raise click.ClickException(
            f"{len(problems)} of {checked} usage figures differ from the rows; "
            f"{len(reported.problems)} differences in {reported.checked} reported overage figures.")
    click.echo(f"OK: {checked} usage figures equal the rows.")
    click.echo(f"OK: {reported.checked} reported overage figures agree"
               + (" with the counters and Stripe." if reported.stripe_compared else " with the counters."))


@usage_cli.command("report")
def usage_report_command():
    """Report settled overage to Stripe's Billing Meters now, conversations and messages each to their own
    (web processes do it every USAGE_REPORT_SECONDS)."""
    if not stripe_client.configured():
        raise click.ClickException("Stripe is not configured (STRIPE_SECRET_KEY is not set): nothing was reported.")
    run = UsageReporter.from_config(current_app.config, stripe_client.client()).report()
    click.echo(run.summary())
    for error, n in run.errors.most_common():
        click.echo(f"{n} failed: {error}")
    if run.stopped:
        click.echo(f"Stopped early: {run.stopped}.")
    if run.too_old:
        click.echo(f"Not sent, older than Stripe accepts: {units_text(run.too_old_units, 'overage')}; "
                   "'flask usage check' lists them.")
    if run.all_failed:
        raise click.ClickException(f"Every attempt failed ({run.failed}); nothing was reported. "
                                   "The records wait and are retried.")


@contextmanager
def _stripe_calls_logged(verbose: bool):
    """Stripe's SDK logs each call at INFO, two lines a call, which buried a command's own summary on stdout.

    For the command's run: without ``verbose`` those lines are dropped (the SDK's
    warnings and errors, and every other logger, still pass as configured); with it,
    they go to stderr, so stdout keeps only the summary.
    """
    logger = logging.getLogger("stripe")
    saved = logger.level, logger.propagate
    handler = None
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logs.JsonFormatter())
        handler.addFilter(logs.ContextFilter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    else:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        if handler is not None:
            logger.removeHandler(handler)


@plans_cli.command("sync")
@click.option("--plan", "codes", multiple=True, metavar="CODE", help="Only this plan (may be repeated).")
@click.option("--verbose", "-v", is_flag=True, help="Log every call to Stripe, on stderr.")
def plans_sync_command(codes, verbose):
    """Create or update the plans' Products, Prices and Meters on Stripe (safe to run again).

    Prints one line per plan saying what changed; warnings and errors are logged as usual.
    """
    from saas.billing import stripe_client
    from saas.billing.catalog import plan_by_code
    from saas.billing.stripe_catalog import CatalogSyncFailed, sync_plans
    from saas.errors import BillingNotConfigured

    try:
        client = stripe_client.client()
    except BillingNotConfigured:
        raise click.ClickException("STRIPE_SECRET_KEY is not set: there is no Stripe account to sync the plans to.") from None
    plans = None
    if codes:
        plans = [plan_by_code(code) for code in codes]
        missing = [code for code, plan in zip(codes, plans) if plan is None]
        if missing:
            raise click.ClickException(f"No plan with code {', '.join(missing)}.")
    try:
        with _stripe_calls_logged(verbose):
            lines = sync_plans(client, plans, actor="cli")
    except CatalogSyncFailed as exc:
        for line in exc.lines:
            click.echo(line)
        raise click.ClickException(exc.message) from None
    for line in lines:
        click.echo(line)


def _progressbar(items, label):
    # On stderr, so that stdout carries only what changed.
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield from bar


@billing_cli.command("resync")
def billing_resync_command():
    """Repair missed Stripe webhooks: replay the undelivered events of the last 30 days, then re-read
    every tenant's subscription from Stripe. Safe to run again. Exits 1 if Stripe fails."""
    from saas.billing import resync, stripe_client
    from saas.errors import BillingUnavailable

    if not stripe_client.configured():
        raise click.ClickException("Stripe is not configured: set STRIPE_SECRET_KEY.")
    try:
        report = resync.run(stripe_client.client(), progress=_progressbar)
    except BillingUnavailable as exc:
        raise click.ClickException(exc.message) from None
    for line in report.changes:
        click.echo(line)
    click.echo(f"Undelivered events: {report.events} ({report.applied} applied now, {report.already} already "
               f"processed). Subscriptions read: {report.checked}. Tenants changed: {len(report.changes)}.")
    for line in report.failures:
        click.echo(line, err=True)
    if report.failures:
        raise click.ClickException(f"Not synced: {len(report.failures)} (listed above); run again once Stripe answers.")

