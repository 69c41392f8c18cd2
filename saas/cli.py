"""flask commands: seed, create-admin, tenants, keys, jobs, usage, sends, plans sync, billing resync, tokens rotate, templates sync, whatsapp, webhooks."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from saas import logs
from saas.billing import stripe_client
from saas.billing.catalog import seed_plans
from saas.billing.services import UnknownPlan
from saas.messaging.numbers import numbers_for
from saas.metering.reconciliation import reconcile
from saas.metering.reporting import UsageReporter
from saas.onboarding import services as onboarding
from saas.tenants import services as accounts

tenants_cli = AppGroup("tenants", help="Create and inspect tenants.")
keys_cli = AppGroup("keys", help="Manage tenants' API keys.")
jobs_cli = AppGroup("jobs", help="Background jobs.")
usage_cli = AppGroup("usage", help="Usage counters and the ledger behind them.")
sends_cli = AppGroup("sends", help="The send path's upkeep.")
plans_cli = AppGroup("plans", help="The plan catalogue.")
billing_cli = AppGroup("billing", help="Stripe billing upkeep.")
tokens_cli = AppGroup("tokens", help="Live numbers' stored WhatsApp access tokens.")
templates_cli = AppGroup("templates", help="WhatsApp message templates.")
whatsapp_cli = AppGroup("whatsapp", help="WhatsApp's webhook notifications.")
webhooks_cli = AppGroup("webhooks", help="Forwarding to tenants' own webhooks.")


@click.command("seed")
@with_appcontext
def seed_command():
    """Create the default plans (safe to run again: existing plans are kept)."""
    created = seed_plans()
    click.echo(f"Plans created: {', '.join(created)}" if created else "Plans already present; nothing to do.")


@click.command("create-admin")
@click.argument("email")
@click.option("--password", help="Needed when the user does not exist yet (prompted if omitted).")
@with_appcontext
def create_admin_command(email, password):
    """Make EMAIL a platform admin, creating the user if needed."""
    from sqlalchemy import select

    from saas.extensions import db
    from saas.tenants.models import User

    try:
        exists = db.session.scalar(select(User.id).where(User.email == accounts.normalise_email(email)))
        if exists is None and not password:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        user, created = accounts.create_platform_admin(email, password)
    except accounts.AccountError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{'Created' if created else 'Promoted'} platform admin {user.email}.")


@tenants_cli.command("create")
@click.option("--name", required=True, help="Company name.")
@click.option("--email", required=True, help="The owner's email.")
@click.option("--password", required=True, help="The owner's password.")
@click.option("--plan", "plan_code", default="free", show_default=True, help="Plan code.")
def create_tenant_command(name, email, password, plan_code):
    """Create a tenant with its owner, subscription and sandbox number."""
    try:
        user = onboarding.sign_up(name, email, password, plan_code=plan_code, verified=True)
    except accounts.AccountError as exc:
        raise click.ClickException(exc.message) from None
    except UnknownPlan as exc:
        raise click.ClickException(str(exc)) from None
    tenant = user.tenant
    number = numbers_for(tenant)[0]
    click.echo(f"Created tenant {tenant.slug} (id {tenant.id}) on plan {plan_code}; owner {user.email}; "
               f"sandbox phone_number_id {number.phone_number_id}")


@tenants_cli.command("set-plan")
@click.argument("tenant")
@click.argument("code")
@click.option("--force", is_flag=True,
              help="Assign it even though a live Stripe subscription decides the plan (recorded in the audit log).")
def set_plan_command(tenant, code, force):
    """Put TENANT (the owner's email or the tenant's slug) on the plan CODE by hand.

    Refused when the tenant's plan comes from a live Stripe subscription: change
    it in Stripe instead, or pass --force.
    """
    from saas.billing import stripe_client
    from saas.billing.services import PlanChangeRefused, PlanFromStripe, assign_plan, subscription_for

    found = accounts.find_tenant(tenant)
    if found is None:
        raise click.ClickException(f"No tenant with slug or owner email {tenant!r}.")
    before = subscription_for(found)
    before_plan, before_status = (before.plan.name, before.status) if before is not None else ("no plan", None)
    configured = stripe_client.configured()
    try:
        subscription = assign_plan(found, code, actor="cli", force=force, stripe_configured=configured)
    except PlanFromStripe as exc:
        raise click.ClickException(f"{exc} Pass --force to assign it anyway.") from None
    except (UnknownPlan, PlanChangeRefused) as exc:
        raise click.ClickException(str(exc)) from None
    after = (subscription.plan.name, subscription.status)
    if (before_plan, before_status) == after:
        click.echo(f"{found.slug} is already on {after[0]} ({after[1]}); nothing changed.")
        return
    click.echo(f"{found.slug}: {before_plan} ({before_status or 'none'}) -> {after[0]} ({after[1]}).")
    if configured and subscription.stripe_subscription_id:
        click.echo(f"Stripe subscription {subscription.stripe_subscription_id} still bills its own plan; "
                   "its next change will replace this one.")


@keys_cli.command("create")
@click.argument("tenant")
@click.option("--name", default="CLI", show_default=True, help="A name for the key.")
def create_key_command(tenant, name):
    """Print a new API key for TENANT (the owner's email or the tenant's slug)."""
    found = accounts.find_tenant(tenant)
    if found is None:
        raise click.ClickException(f"No tenant with slug or owner email {tenant!r}.")
    click.echo(accounts.create_api_key(found, name).secret)


@jobs_cli.command("worker")
def worker_command():
    """Run background jobs from Redis (needs REDIS_URL); survives Redis going away and coming back."""
    from saas import jobs

    queue = current_app.extensions.get("rq_queue")
    if queue is None:
        raise click.ClickException("REDIS_URL is not set; without it follow-up jobs run in each web process's background thread.")
    jobs.work(queue)


@usage_cli.command("rollup")
def usage_rollup_command():
    """Move every usage entry into the counters now (web processes do it every second)."""
    from saas.extensions import db

    moved = current_app.extensions["metering"].roll_up_all(db.session)
    click.echo(f"Rolled up {moved} usage entries.")


@usage_cli.command("check")
def usage_check_command():
    """Check that every tenant's usage equals its rows (messages sent, windows opened) and that its overage
    was reported, and with Stripe configured that Stripe's meter counts what was reported. Exits 1 if not."""
    from saas.extensions import db
    from saas.messaging.audit import audit_usage

    problems, checked = audit_usage(db.session)
    for problem in problems:
        click.echo(problem)
    client = stripe_client.client() if stripe_client.configured() else None
    reported = reconcile(db.session, client, event_name=current_app.config["STRIPE_METER_EVENT_NAME"])
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
    """Report settled overage to Stripe's Billing Meter now (web processes do it every USAGE_REPORT_SECONDS)."""
    if not stripe_client.configured():
        raise click.ClickException("Stripe is not configured (STRIPE_SECRET_KEY is not set): nothing was reported.")
    run = UsageReporter.from_config(current_app.config, stripe_client.client()).report()
    click.echo(run.summary())
    for error, n in run.errors.most_common():
        click.echo(f"{n} failed: {error}")
    if run.stopped:
        click.echo(f"Stopped early: {run.stopped}.")
    if run.too_old:
        click.echo(f"{run.too_old} overage conversations are older than Stripe accepts and were not sent; "
                   "'flask usage check' lists them.")
    if run.all_failed:
        raise click.ClickException(f"Every attempt failed ({run.failed}); nothing was reported. "
                                   "The records wait and are retried.")


@sends_cli.command("recover")
@click.option("--older-than", type=float, default=None,
              help="Seconds a send must have been pending (default RECOVER_SENDS_AFTER_SECONDS, the longest a "
                   "live send can take). Shorter only once no process can still be sending.")
def sends_recover_command(older_than):
    """Write accepts kept while the database was away, then settle sends left pending by a crash: failed and
    not billed (web processes do both on their own)."""
    from datetime import timedelta

    service = current_app.extensions["send_service"]
    settled = service.recover_interrupted(older_than=timedelta(seconds=older_than) if older_than is not None else None)
    click.echo(f"Settled {settled} interrupted sends.")


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
    """Create or update the plans' Products, Prices and Meter on Stripe (safe to run again).

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


@tokens_cli.command("rotate")
def tokens_rotate_command():
    """Re-encrypt every stored access token with TOKEN_ENCRYPTION_KEY's first key.

    Put the new key first (NEW,OLD), restart, run this; then the old key can
    be dropped. Exits 1 when some token no configured key decrypts (listed).
    """
    from saas.messaging.connections import rotate_tokens

    rotation = rotate_tokens("cli")
    click.echo(f"Re-encrypted {rotation.rotated} access token{'s' if rotation.rotated != 1 else ''} "
               "with the first key.")
    for tenant_id, phone_number_id in rotation.unreadable:
        click.echo(f"Cannot decrypt the token of phone_number_id {phone_number_id} (tenant {tenant_id}) "
                   "with any configured key; its tenant must connect the number again.")
    if rotation.unreadable:
        raise click.ClickException(f"{len(rotation.unreadable)} token(s) could not be decrypted; left as they were.")


@templates_cli.command("sync")
@click.argument("tenant", required=False)
def templates_sync_command(tenant):
    """Sync message templates from WhatsApp for TENANT (slug or owner email), or every tenant with a live number."""
    from saas.messaging.graph import GraphError
    from saas.messaging.template_sync import sync_all, sync_templates
    from saas.messaging.templates import wabas_for

    graph = current_app.extensions["graph"]
    try:
        if tenant is None:
            results = sync_all(graph, actor="cli")
        else:
            found = accounts.find_tenant(tenant)
            if found is None:
                raise click.ClickException(f"No tenant with slug or owner email {tenant!r}.")
            if not wabas_for(found):
                raise click.ClickException(f"{found.slug} has no live number with a WhatsApp Business Account.")
            results = {found.slug: sync_templates(graph, found, actor="cli")}
    except GraphError as exc:
        raise click.ClickException(f"WhatsApp refused or could not be reached ({exc}); nothing was changed.") from None
    if not results:
        click.echo("No tenant has a live number with a WhatsApp Business Account; nothing to sync.")
    for slug, result in results.items():
        click.echo(f"{slug}: {result}.")


@whatsapp_cli.command("apply-pending")
@click.option("--older-than", default=10, show_default=True, help="Seconds a notification must have waited.")
def whatsapp_apply_pending_command(older_than):
    """Apply stored WhatsApp notifications a crash left unapplied (web processes do it every 30 s)."""
    from datetime import timedelta

    from saas.messaging import notifications

    applied = notifications.apply_pending(older_than=timedelta(seconds=older_than))
    click.echo(f"Applied {applied} stored notifications.")


@whatsapp_cli.command("unapplied")
@click.option("--limit", default=50, show_default=True, help="How many to list.")
def whatsapp_unapplied_command(limit):
    """List the items of WhatsApp's notifications kept unapplied, the latest first, with why."""
    from saas.messaging import notifications, unapplied

    for note in notifications.given_up(limit=limit):
        click.echo(f"notification {note.id} (received {note.received_at:%Y-%m-%d %H:%M:%S}) not applied after "
                   f"{note.attempts} tries: {note.error}")
    items = unapplied.open_items(limit=limit)
    if not items:
        click.echo("No items are kept unapplied.")
    for item in items:
        again = (f"next try {item.next_try_at:%Y-%m-%d %H:%M} UTC" if item.next_try_at
                 else "tried again only by hand")
        click.echo(f"{item.id} {item.failed_at:%Y-%m-%d %H:%M:%S} notification {item.notification_id or '(pruned)'}, "
                   f"{item.location} ({item.field or 'no field'}), {item.attempts} tries, {again}: {item.error}")


@whatsapp_cli.command("retry-unapplied")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every item not applied yet.")
def whatsapp_retry_unapplied_command(ids, every):
    """Apply kept items again now (after a fix): the ids given, or with --all every one, and every
    notification given up after its last try."""
    from saas.messaging import notifications, unapplied

    if not ids and not every:
        raise click.UsageError("Name the items to apply again, or pass --all.")
    if every:
        notifications.apply_many([(note.id,) for note in notifications.given_up(limit=10_000)])
    result = unapplied.retry(unapplied.open_ids() if every else ids)
    click.echo(f"Applied {result.applied}; still kept {result.kept}.")


@webhooks_cli.command("deliver")
def webhooks_deliver_command():
    """Send the deliveries to tenants' webhooks that are due now, and wait for their answers."""
    from saas.messaging import delivery

    sent = delivery.deliver_due(wait_for_answers=True, limit=500)
    click.echo(f"Tried {sent} deliveries.")


def init_app(app) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(tenants_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(usage_cli)
    app.cli.add_command(sends_cli)
    app.cli.add_command(plans_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(templates_cli)
    app.cli.add_command(whatsapp_cli)
    app.cli.add_command(webhooks_cli)
