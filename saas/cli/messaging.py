"""flask commands for WhatsApp: sends batch and recover, tokens rotate, templates sync, whatsapp, webhooks."""
from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from saas.tenants import services as accounts

sends_cli = AppGroup("sends", help="Sending messages in batches, and the send path's upkeep.")
tokens_cli = AppGroup("tokens", help="Live numbers' stored WhatsApp access tokens.")
templates_cli = AppGroup("templates", help="WhatsApp message templates.")
whatsapp_cli = AppGroup("whatsapp", help="WhatsApp's webhook notifications.")
webhooks_cli = AppGroup("webhooks", help="Forwarding to tenants' own webhooks.")


@sends_cli.command("recover")
@click.option("--older-than", type=float, default=None,
              help="Seconds a send must have been pending (default RECOVER_SENDS_AFTER_SECONDS, the longest a "
                   "live send can take). Shorter only once no process can still be sending.")
def sends_recover_command(older_than):
    """Write accepts kept while the database was away, then settle sends left pending by a crash: failed and
    not billed (web processes do both on their own)."""
    from datetime import timedelta

    from saas.messaging.outbound import send_service

    service = send_service(current_app)
    settled = service.recover_interrupted(older_than=timedelta(seconds=older_than) if older_than is not None else None)
    click.echo(f"Settled {settled} interrupted sends.")


@sends_cli.command("batch")
@click.option("--tenant", "tenant_ref", required=True, help="The sending tenant: its slug or its owner's email.")
@click.option("--from", "phone_number_id", required=True,
              help="The number that sends: its phone_number_id (Meta's id, or the sandbox number's).")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10_000),
              help="Messages sent per batch (each batch is one call of the send service).")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def sends_batch_command(tenant_ref, phone_number_id, batch_size, file):
    """Send the messages in FILE from one of a tenant's numbers: JSON lines, one Cloud API message body
    per line ('-' reads standard input).

    Each message is sent as the API sends it (validated, WhatsApp's rules, the plan's quota, metered
    once). Prints a JSON line per message, in order: its message ids, or the error envelope the API
    would have answered; then how many were sent. Exits 1 when any was refused.
    """
    from saas.errors import ApiError
    from saas.messaging.outbound import send_service
    from saas.tenants.services import tenant_snapshot

    found = accounts.find_tenant(tenant_ref)
    if found is None:
        raise click.ClickException(f"No tenant with slug or owner email {tenant_ref!r}.")
    tenant, service = tenant_snapshot(found.id), send_service(current_app)
    sent = refused = 0
    for group in _lines(file, batch_size):
        try:
            results = iter(service.send_many(tenant, phone_number_id,
                                             [body for _, body in group if not isinstance(body, ApiError)]))
        except ApiError as exc:
            raise click.ClickException(f"Nothing sent from line {group[0][0]} on: {exc.message}") from None
        # Error envelopes carry links (upgrade_url), which need a request context.
        with current_app.test_request_context("/"):
            for line, body in group:
                printed = _printed(line, body if isinstance(body, ApiError) else next(results))
                sent, refused = (sent + 1, refused) if "error" not in printed else (sent, refused + 1)
                click.echo(json.dumps(printed))
    click.echo(f"Sent {sent}, refused {refused}.", err=True)
    if refused:
        raise SystemExit(1)


def _lines(file, size: int):
    """FILE's non-blank lines in groups of ``size``: (line number, the body, or InvalidRequest) each."""
    from saas.errors import InvalidRequest

    group = []
    for number, raw in enumerate(file, 1):
        if not raw.strip():
            continue
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = InvalidRequest("The request body is not valid JSON.")
        group.append((number, body))
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _printed(line: int, result) -> dict:
    """One message's line of output: a send's result (saas.messaging.outbound.batch), or a line's error."""
    from saas.error_handlers import api_envelope
    from saas.errors import ApiError

    if isinstance(result, ApiError):
        return {"line": line, "error": api_envelope(result)}
    if result.accepted:
        return {"line": line, "to": result.to, "message_id": result.message_id, "wa_message_id": result.wa_message_id}
    printed = {"line": line, "to": result.to, "error": api_envelope(result.error)}
    if result.message_id is not None:
        printed["message_id"] = result.message_id
    return printed


@tokens_cli.command("rotate")
def tokens_rotate_command():
    """Re-encrypt every stored access token with TOKEN_ENCRYPTION_KEY's first key.

    Put the new key first (NEW,OLD), restart, run this; then the old key can
    be dropped. Exits 1 when some token no configured key decrypts (listed).
    """
    from saas.messaging.numbers.connections import rotate_tokens

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
    from saas.messaging.numbers.graph import GraphError
    from saas.messaging.templates.sync import sync_all, sync_templates
    from saas.messaging.templates.message_templates import wabas_for

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

    from saas.messaging.inbound import notifications

    applied = notifications.apply_pending(older_than=timedelta(seconds=older_than))
    click.echo(f"Applied {applied} stored notifications.")


@whatsapp_cli.command("unapplied")
@click.option("--limit", default=50, show_default=True, help="How many to list.")
def whatsapp_unapplied_command(limit):
    """List the items of WhatsApp's notifications kept unapplied, the latest first, with why."""
    from saas.messaging.inbound import notifications, unapplied

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
    from saas.messaging.inbound import notifications, unapplied

    if not ids and not every:
        raise click.UsageError("Name the items to apply again, or pass --all.")
    if every:
        notifications.apply_many([(note.id,) for note in notifications.given_up(limit=10_000)])
    result = unapplied.retry(unapplied.open_ids() if every else ids)
    click.echo(f"Applied {result.applied}; still kept {result.kept}.")


@webhooks_cli.command("deliver")
def webhooks_deliver_command():
    """Send the deliveries to tenants' webhooks that are due now, and wait for their answers."""
    from saas.messaging.tenant_webhooks import delivery

    sent = delivery.deliver_due(wait_for_answers=True, limit=500)
    click.echo(f"Tried {sent} deliveries.")

