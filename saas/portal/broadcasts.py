"""The tenant's broadcasts: the list, a new one (number and template, then its audience and a binding
per variable), its check to confirm, and its report (funnel, failure reasons, steering, CSV export);
plan feature ``broadcast``, exports ``analytics_export``."""
from __future__ import annotations

from datetime import timezone

from flask import (
    Blueprint, Response, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from saas.billing import entitlements
from saas.broadcasts import export, services
from saas.broadcasts.models import CHECKING, DEFAULT_RATE, MAX_RATE, RUNNING, SCHEDULED
from saas.broadcasts.templates import offered
from saas.errors import ApiError, NotFound
from saas.extensions import db
from saas.messaging.numbers.phone_numbers import numbers_for
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm
from saas.text import CleanText

bp = Blueprint("broadcasts", __name__, url_prefix="/broadcasts")

SOURCES = [SelectChoice("name", "Contact's name"), SelectChoice("wa_id", "Contact's WhatsApp number"),
           SelectChoice("attr", "Custom attribute"), SelectChoice("value", "The same text for everyone")]
MAX_UPLOAD = 1024 * 1024
FUNNEL = ("queued", "sending", "sent", "delivered", "read", "failed", "skipped", "unknown")
# The page of a broadcast being checked or sent reloads itself this often (a meta refresh: no script needed).
REFRESH_SECONDS = 2


class BroadcastForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200), CleanText()])
    labels = StringField("Contacts with any of these labels", validators=[Optional(), Length(max=1100), CleanText()],
                         description="Comma-separated, e.g. vip, newsletter")
    everyone = BooleanField("All my contacts")
    numbers = TextAreaField("Or these numbers", validators=[Optional(), Length(max=200_000)],
                            description="One WhatsApp number per line, with its country code")
    upload = FileField("Or a file of numbers (.csv or .txt, first column)")
    country = StringField("Only these countries", validators=[Optional(), Length(max=200), CleanText()],
                          description="ISO codes, comma-separated, e.g. TR, DE")
    at = StringField("Send at (optional)", validators=[Optional(), Length(max=19)],
                     render_kw={"type": "datetime-local"})
    timezone = StringField("Time zone", default="UTC", validators=[Optional(), Length(max=64)])
    recurrence = SelectField("Repeat", choices=[SelectChoice("", "Once"), SelectChoice("daily", "Daily"),
                                              SelectChoice("weekly", "Weekly")], default="")
    messages_per_second = IntegerField("Messages per second", default=DEFAULT_RATE,
                                       validators=[NumberRange(min=1, max=MAX_RATE)])
    retry_per_user_limit = BooleanField("Retry recipients Meta holds back for its per-user marketing limit "
                                        "(131049) once, a day later")


def variable_form(variables: list[str]):
    """The form with a source, a value and a default for each of the template's variables."""
    class Form(BroadcastForm):
        pass

    for index, _ in enumerate(variables):
        setattr(Form, f"v{index}_source", SelectField("Filled with", choices=SOURCES, default="name"))
        setattr(Form, f"v{index}_value", StringField("Attribute key or text",
                                                     validators=[Optional(), Length(max=1024), CleanText()]))
        setattr(Form, f"v{index}_default", StringField("When empty, use",
                                                       validators=[Optional(), Length(max=1024), CleanText()]))
    return Form()


def _gate(tenant):
    rights = entitlements.for_tenant(tenant)
    if not rights.may(services.FEATURE):
        return render_template("portal/broadcasts.html", allowed=False, plan=rights.effective, broadcasts=[],
                               counts={}), 403
    return None


@bp.get("")
@tenant_required
@allowed("broadcasts")
def index(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    rows = services.list_for(tenant, limit=100)
    return render_template("portal/broadcasts.html", allowed=True, broadcasts=rows,
                           counts=services.counts(tenant, [b.id for b in rows]))


def _choice(tenant):
    """The number and template picked (query string ``pick``: "<number pk>|<name>|<language>"), or None."""
    choices = offered(db.session, tenant, numbers_for(tenant))
    picked = request.args.get("pick", "")
    found = next(((n, t) for n, t in choices if f"{n.id}|{t.name}|{t.language}" == picked), None)
    return choices, found


def _new_page(tenant, choices, found, form=None, error=None, status=200):
    if found is not None and form is None:
        form = variable_form(found[1].variables)
    return render_template("portal/broadcast_new.html", choices=choices, found=found, form=form, error=error,
                           variables=list(enumerate(found[1].variables)) if found else []), status


@bp.get("/new")
@tenant_required
@allowed("broadcasts")
def new(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    choices, found = _choice(tenant)
    return _new_page(tenant, choices, found)


@bp.post("/new")
@tenant_required
@allowed("broadcasts")
def create(tenant):
    refused = _gate(tenant)
    if refused:
        return refused
    choices, found = _choice(tenant)
    if found is None:
        return _new_page(tenant, choices, None, error="Pick a number and an approved template first.", status=400)
    number, template = found
    form = variable_form(template.variables)
    if not form.validate_on_submit():
        return _new_page(tenant, choices, found, form, status=400)
    data = _data(form, number, template)
    if isinstance(data, str):
        return _new_page(tenant, choices, found, form, error=data, status=400)
    try:
        broadcast = services.create(tenant, entitlements.for_tenant(tenant), data, actor=current_user.email,
                                    inline_max=current_app.config["BROADCAST_CHECK_INLINE_MAX"])
    except ApiError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        error = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in details.items()) or exc.message
        return _new_page(tenant, choices, found, form, error=error, status=400)
    return redirect(url_for("portal.broadcasts.show", broadcast_id=broadcast.id), 303)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def _data(form, number, template) -> dict | str:
    """The API's fields from the form, or what is wrong with the uploaded file."""
    listed = [line.split(",")[0].strip() for line in (form.numbers.data or "").splitlines() if line.strip()]
    upload = form.upload.data
    if upload:
        raw = upload.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            return "The file is larger than 1 MB."
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return "The file is not UTF-8 text."
        listed += [line.split(",")[0].strip().strip('"') for line in text.splitlines() if line.strip()]
    listed = [value for value in listed if any(ch.isdigit() for ch in value)]
    variables = {}
    for index, name in enumerate(template.variables):
        source, value = getattr(form, f"v{index}_source").data, (getattr(form, f"v{index}_value").data or "").strip()
        binding = {"value": value} if source == "value" else {
            "field": f"attr:{value}" if source == "attr" else source}
        default = (getattr(form, f"v{index}_default").data or "").strip()
        if default:
            binding["default"] = default
        variables[name] = binding
    data = {"name": form.name.data.strip(), "phone_number_id": number.phone_number_id,
            "template": {"name": template.name, "language": template.language}, "variables": variables,
            "audience": {"all": bool(form.everyone.data), "labels": _split(form.labels.data), "wa_ids": listed,
                         "country": [c.upper() for c in _split(form.country.data)]},
            "messages_per_second": form.messages_per_second.data,
            "retry_per_user_limit": bool(form.retry_per_user_limit.data)}
    if form.at.data:
        data["schedule"] = {"at": form.at.data[:16], "timezone": (form.timezone.data or "UTC").strip(),
                            "recurrence": form.recurrence.data or None}
    return data


@bp.get("/<broadcast_id>")
@tenant_required
@allowed("broadcasts")
def show(tenant, broadcast_id):
    refused = _gate(tenant)
    if refused:
        return refused
    try:
        broadcast = services.get(tenant, broadcast_id)
    except NotFound:
        abort(404)
    counts = services.counts(tenant, [broadcast.id])[broadcast.id]
    timeline = services.sends_over_time(tenant, broadcast.id)
    return render_template("portal/broadcast.html", broadcast=broadcast, counts=counts, funnel=FUNNEL,
                           reasons=services.failure_reasons(tenant, broadcast.id), confirm=ConfirmForm(),
                           may_export=entitlements.for_tenant(tenant).may(services.EXPORT_FEATURE),
                           timeline=timeline, peak=max((n for _, n in timeline), default=0),
                           chart_minutes=[int(m.replace(tzinfo=timezone.utc).timestamp()) for m, _ in timeline],
                           chart_sends=[n for _, n in timeline],
                           refresh=REFRESH_SECONDS if broadcast.status in (CHECKING, SCHEDULED, RUNNING) else None)


@bp.post("/<broadcast_id>/<verb>")
@tenant_required
@allowed("broadcasts")
def step(tenant, broadcast_id, verb):
    if verb not in ("start", "pause", "resume", "cancel", "check"):
        abort(404)
    refused = _gate(tenant)
    if refused:
        return refused
    if not ConfirmForm().validate_on_submit():
        abort(400)
    action = getattr(services, "recheck" if verb == "check" else verb)
    options = {"inline_max": current_app.config["BROADCAST_CHECK_INLINE_MAX"]} if verb == "check" else {}
    try:
        broadcast = action(tenant, entitlements.for_tenant(tenant), broadcast_id, **options)
    except NotFound:
        abort(404)
    except ApiError as exc:
        flash(exc.message, "error")
        return redirect(url_for("portal.broadcasts.show", broadcast_id=broadcast_id), 303)
    flash(f"Broadcast {broadcast.name}: {broadcast.status}.", "success")
    return redirect(url_for("portal.broadcasts.show", broadcast_id=broadcast.id), 303)


@bp.get("/<broadcast_id>/recipients.csv")
@tenant_required
@allowed("broadcasts")
def recipients_csv(tenant, broadcast_id):
    refused = _gate(tenant)
    if refused:
        return refused
    if not entitlements.for_tenant(tenant).may(services.EXPORT_FEATURE):
        return render_template("portal/broadcasts.html", allowed=False, export_refused=True,
                               plan=entitlements.for_tenant(tenant).effective, broadcasts=[], counts={}), 403
    try:
        broadcast = services.get(tenant, broadcast_id)
    except NotFound:
        abort(404)
    response = Response(stream_with_context(export.lines(tenant, broadcast.id)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="broadcast-{broadcast.id}-recipients.csv"'
    return response
