"""The admin's rate cards page: the stored cards and charging rules, and the upload of a new card or rule
set (a CSV in Meta's layout, checked row by row: a bad file is refused with its rows' errors by the field)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import DateField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import Length, Optional

from saas.admin.access import platform_admin_required
from saas.costs import cards
from saas.costs.models import SOURCE_LENGTH, ChargingRule
from saas.extensions import db

bp = Blueprint("admin_rates", __name__, url_prefix="/admin/rates")

# Meta's whole card is a few hundred rows (the request's own bound, MAX_REQUEST_BYTES, is the outer one).
MAX_UPLOAD_BYTES = 200 * 1024


@bp.context_processor
def console_links():
    # The console's menu links the plans pages where this app has them.
    return {"plans_url": url_for("admin_plans.index") if "admin_plans.index" in current_app.view_functions else None}


class UploadForm(FlaskForm):
    kind = SelectField("What the file holds",
                       choices=[SelectChoice("card", "A rate card (market, currency, marketing, ...)"),
                                SelectChoice("rules", "Charging rules (category, context, charged)")])
    file = FileField("CSV file")
    effective = DateField("In force from", validators=[Optional()],
                          description="Leave empty to use the file's '# effective:' line.")
    source = StringField("Source", validators=[Optional(), Length(max=SOURCE_LENGTH)],
                         description="Where the rates come from; empty: the file's '# source:' line.")


def _text(form) -> str | None:
    upload = form.file.data
    if upload is None or not getattr(upload, "filename", ""):
        form.file.errors.append("Choose a CSV file.")
        return None
    raw = upload.stream.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        form.file.errors.append(f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KB: not a rate card.")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        form.file.errors.append("The file is not UTF-8 text.")
        return None


def _store(form, text: str) -> str:
    name = (form.file.data.filename or "")[:200]
    if form.kind.data == "rules":
        count = cards.load_rules(db.session, text, effective=form.effective.data, source=form.source.data or None)
        return f"Loaded {count} charging rules from {name}."
    card = cards.load_card(db.session, text, effective=form.effective.data, source=form.source.data or None,
                           filename=name, uploaded_by=current_user.email)
    return f"Loaded the {card.currency} card in force from {card.effective_from:%Y-%m-%d}."


@bp.route("", methods=["GET", "POST"])
@platform_admin_required
def index():
    form = UploadForm()
    if form.validate_on_submit():
        form.file.errors = list(form.file.errors)
        text = _text(form)
        if text is not None:
            try:
                message = _store(form, text)
            except cards.CardError as exc:
                form.file.errors.extend(exc.errors)
            else:
                flash(message, "info")
                return redirect(url_for("admin_rates.index"))
    rules = db.session.scalars(select(ChargingRule).order_by(ChargingRule.effective_from.desc(),
                                                              ChargingRule.category, ChargingRule.context)).all()
    return (render_template("admin/rates.html", form=form, cards=cards.cards(db.session), rules=rules),
            400 if form.errors else 200)
