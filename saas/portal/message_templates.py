"""The tenant's message templates: list, sync from WhatsApp, create, delete (plan feature ``template``)."""
from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from wtforms.fields import SelectChoice

from saas.billing import entitlements
from saas.errors import NotFound
from saas.messaging.templates import message_templates as templates
from saas.messaging.numbers.graph import GraphError, GraphUnavailable
from saas.messaging.models import MODE_SANDBOX
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.messaging.templates.sync import sync_templates
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm, TemplateForm

bp = Blueprint("message_templates", __name__, url_prefix="/templates")

FEATURE = "template"


def _page(tenant, form=None, status=200, error=None):
    rights = entitlements.for_tenant(tenant)
    wabas = [w.waba_id for w in templates.wabas_for(tenant)] if rights.may(FEATURE) else []
    if form is None:
        form = TemplateForm()
    form.waba_id.choices = [SelectChoice(w, w) for w in wabas]
    sandbox = any(n.mode == MODE_SANDBOX for n in numbers_for(tenant))
    return render_template(
        "portal/templates.html", allowed=rights.may(FEATURE), plan=rights.effective, form=form, wabas=wabas,
        templates=templates.templates_for(tenant) if rights.may(FEATURE) else [], error=error,
        sandbox_templates=sorted(templates.SANDBOX_TEMPLATES.values(), key=lambda t: t.name) if sandbox else [],
        confirm=ConfirmForm()), status


def _gate(tenant):
    """The page itself (403) for a tenant whose plan has no templates: it says why and links to billing."""
    if not entitlements.for_tenant(tenant).may(FEATURE):
        return _page(tenant, status=403)
    return None


@bp.get("")
@tenant_required
@allowed("templates")
def index(tenant):
    return _gate(tenant) or _page(tenant)


@bp.post("")
@tenant_required
@allowed("templates")
def create(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    form = TemplateForm()
    form.waba_id.choices = [SelectChoice(w.waba_id, w.waba_id) for w in templates.wabas_for(tenant)]
    if not form.validate_on_submit():
        return _page(tenant, form, 400)
    try:
        components = json.loads(form.components.data)
    except ValueError:
        form.components.errors.append("This is not valid JSON.")
        return _page(tenant, form, 400)
    try:
        template = templates.create_template(
            current_app.extensions["graph"], tenant, waba_id=form.waba_id.data, name=form.name.data.strip(),
            language=form.language.data.strip(), category=form.category.data, components=components,
            actor=current_user)
    except templates.TemplateInvalid as exc:
        for field, message in exc.errors.items():
            getattr(form, field).errors.append(message)
        return _page(tenant, form, 400)
    except GraphUnavailable as exc:
        return _page(tenant, form, 502, error=str(exc))
    except GraphError as exc:
        # Meta's own words: why it refused (a duplicate name, a format it rejects ...).
        return _page(tenant, form, 400, error=f"WhatsApp refused the template: {exc}")
    flash(f"Template {template.name} ({template.language}) was submitted to WhatsApp; its status is "
          f"{template.status.lower()} until Meta reviews it.", "success")
    return redirect(url_for("portal.message_templates.index"), 303)


@bp.post("/sync")
@tenant_required
@allowed("templates")
def sync(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        result = sync_templates(current_app.extensions["graph"], tenant, actor=current_user)
    except GraphError as exc:
        return _page(tenant, status=502 if isinstance(exc, GraphUnavailable) else 400,
                     error=f"Templates could not be synced from WhatsApp: {exc}. Nothing was changed.")
    flash(f"Templates synced from WhatsApp: {result}.", "success")
    return redirect(url_for("portal.message_templates.index"), 303)


@bp.post("/<template_id>/delete")
@tenant_required
@allowed("templates")
def delete(tenant, template_id):
    refused = _gate(tenant)
    if refused:
        return refused
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        languages = templates.delete_template(current_app.extensions["graph"], tenant, template_id,
                                              actor=current_user)
    except NotFound:
        abort(404)
    except GraphError as exc:
        return _page(tenant, status=502 if isinstance(exc, GraphUnavailable) else 400,
                     error=f"WhatsApp did not delete the template: {exc}. Nothing was changed.")
    flash(f"Template deleted from WhatsApp ({', '.join(languages)}).", "info")
    return redirect(url_for("portal.message_templates.index"), 303)
