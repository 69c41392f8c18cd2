"""flask commands: seed, create-admin, tenants, keys, jobs, usage, sends, plans sync, billing resync, tokens rotate, templates sync, whatsapp, webhooks, events, broadcasts, rates, analytics.

The accounts' and the worker's are here; Stripe billing's (usage, plans, billing) in saas.cli.billing;
WhatsApp's (sends, tokens, templates, whatsapp, webhooks) in saas.cli.messaging; the domain events' outbox in
saas.cli.events; Meta's rate cards and the reconciliation with Meta's pricing in saas.cli.rates.
"""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from saas.billing.catalog import seed_plans
from saas.billing.services import UnknownPlan
from saas.cli.analytics import analytics_cli
from saas.cli.billing import billing_cli, plans_cli, usage_cli
from saas.cli.broadcasts import broadcasts_cli
from saas.cli.events import events_cli
from saas.cli.rates import rates_cli
from saas.cli.messaging import sends_cli, templates_cli, tokens_cli, webhooks_cli, whatsapp_cli
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.onboarding import services as onboarding
from saas.tenants import services as accounts

tenants_cli = AppGroup("tenants", help="Create and inspect tenants.")
keys_cli = AppGroup("keys", help="Manage tenants' API keys.")
jobs_cli = AppGroup("jobs", help="Background jobs.")


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
    from saas import rq_worker

    queue = current_app.extensions.get("rq_queue")
    if queue is None:
        raise click.ClickException("REDIS_URL is not set; without it follow-up jobs run in each web process's background thread.")
    rq_worker.work(queue)  # the same loop as ``python worker.py`` (saas.worker), in this app


def init_app(app) -> None:
    for command in (seed_command, create_admin_command, tenants_cli, keys_cli, jobs_cli, usage_cli, sends_cli,
                    plans_cli, billing_cli, tokens_cli, templates_cli, whatsapp_cli, webhooks_cli, events_cli,
                    broadcasts_cli, rates_cli, analytics_cli):
        app.cli.add_command(command)
