"""The tenant's webhook page: its URL, its signing secret, and the deliveries made to it.

Plan feature ``webhooks``: a tenant without it sees why and where to upgrade.
The page is /webhooks; its actions live beside it (/webhook-...), since paths
under /webhooks/ belong to the machines that call us and get JSON errors.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from saas.billing import entitlements
from saas.errors import NotFound
from saas.ids import parse_id
from saas.messaging.tenant_webhooks import endpoints, forwarding
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm, WebhookForm

bp = Blueprint("webhooks", __name__)

PAGE = 50


def _allowed(tenant) -> bool:
    return entitlements.for_tenant(tenant).may(forwarding.FEATURE)


def _page(tenant, form=None, new_secret=None, status=200):
    if not _allowed(tenant):
        # The page itself explains; anything else it leads to is refused.
        refused = request.endpoint != "portal.webhooks.index"
        return render_template("portal/webhooks.html", allowed=False), 403 if refused else 200
    before = parse_id(request.args.get("before")) if request.args.get("before") else None
    deliveries = forwarding.list_deliveries(tenant, limit=PAGE + 1, before_id=before)
    endpoint = endpoints.endpoint_for(tenant)
    if form is None:
        form = WebhookForm(formdata=None, data={"url": endpoint.url if endpoint else ""})
    return render_template("portal/webhooks.html", allowed=True, form=form, endpoint=endpoint,
                           new_secret=new_secret, deliveries=deliveries[:PAGE],
                           older=deliveries[PAGE - 1].id if len(deliveries) > PAGE else None,
                           confirm=ConfirmForm()), status


@bp.get("/webhooks")
@tenant_required
@allowed("webhooks")
def index(tenant):
    return _page(tenant)


@bp.post("/webhooks")
@tenant_required
@allowed("webhooks")
def save(tenant):
    if not _allowed(tenant):
        return _page(tenant)
    form = WebhookForm()
    if form.validate_on_submit():
        try:
            endpoint, secret = endpoints.save_endpoint(tenant, form.url.data)
        except endpoints.EndpointError as exc:
            form.url.errors.append(exc.message)
        else:
            if secret:
                return _page(tenant, new_secret=secret, status=201)
            flash("Your webhook URL is saved; events are forwarded to it.", "success")
            return redirect(url_for("portal.webhooks.index"))
    return _page(tenant, form=form, status=400)


@bp.post("/webhook-secret")
@tenant_required
@allowed("webhooks")
def rotate(tenant):
    if not _allowed(tenant):
        return _page(tenant)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    rotated = endpoints.rotate_secret(tenant)
    if rotated is None:
        abort(404)
    return _page(tenant, new_secret=rotated.secret)


@bp.post("/webhook-pause")
@tenant_required
@allowed("webhooks")
def pause(tenant):
    if not _allowed(tenant):
        return _page(tenant)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if endpoints.pause(tenant) is None:
        abort(404)
    flash("Forwarding is paused: no new events are recorded; save your URL again to resume.", "info")
    return redirect(url_for("portal.webhooks.index"))


@bp.get("/webhook-deliveries/<delivery_id>")
@tenant_required
@allowed("webhooks")
def delivery(tenant, delivery_id):
    if not _allowed(tenant):
        return _page(tenant)
    try:
        found = forwarding.get_delivery(tenant, delivery_id)
    except NotFound:
        abort(404)
    return render_template("portal/webhook_delivery.html", delivery=found,
                           attempts=forwarding.attempts_of(tenant, found), confirm=ConfirmForm())


# What the tenant is told a replay did (saas.messaging.tenant_webhooks.forwarding.Replayed).
REPLAYED = {
    "copied": "Delivery {id} is sent again as delivery {copy}.",
    "due now": "Delivery {copy} is sent now, to your current URL; its waiting retry is not sent again.",
    "delivered meanwhile": "Delivery {id} was delivered meanwhile; it is not sent twice.",
    "in flight": "Delivery {copy} is being sent right now; replay it again if this try fails.",
}


@bp.post("/webhook-deliveries/<delivery_id>/replay")
@tenant_required
@allowed("webhooks")
def replay(tenant, delivery_id):
    if not _allowed(tenant):
        return _page(tenant)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        # The state the page showed: a delivery seen pending and delivered meanwhile is not sent twice.
        replayed = forwarding.replay(tenant, delivery_id, seen_state=request.form.get("seen_state"))
    except NotFound:
        abort(404)
    flash(REPLAYED[replayed.outcome].format(id=delivery_id, copy=replayed.delivery.id),
          "success" if replayed.outcome in ("copied", "due now") else "info")
    return redirect(url_for("portal.webhooks.index"))

