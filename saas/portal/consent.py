"""Marketing consent in the portal: the keyword settings page, and a contact's opt-in or opt-out per number.

The contact's page (the contacts pages) includes ``portal/contacts/_consent.html`` with ``contact`` in
its context; the partial reads the contact's consent through the ``contact_consent`` template global
registered here, and its forms post to ``record``, which returns to the page they came from.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from saas.contacts.consent import keywords, records, services
from saas.contacts.models import OPTED_IN, OPTED_OUT, SOURCE_PORTAL
from saas.errors import InvalidRequest, NotFound
from saas.portal.access import allowed, may, tenant_required
from saas.text import CleanText

bp = Blueprint("consent", __name__)

# Room for MAX_KEYWORDS keywords of KEYWORD_LENGTH characters, one per line.
KEYWORDS_TEXT = keywords.MAX_KEYWORDS * (keywords.KEYWORD_LENGTH + 2)


class KeywordsForm(FlaskForm):
    opt_out = TextAreaField("Opt-out keywords, one per line", validators=[Length(max=KEYWORDS_TEXT),
                                                                          CleanText(allow="\r\n")])
    opt_in = TextAreaField("Opt-in keywords, one per line", validators=[Length(max=KEYWORDS_TEXT),
                                                                        CleanText(allow="\r\n")])


class ConsentForm(FlaskForm):
    number = SelectField("Number", coerce=int, validate_choice=False, validators=[DataRequired()])
    state = SelectField("Consent", choices=[SelectChoice(OPTED_IN, "Opted in"), SelectChoice(OPTED_OUT, "Opted out")])
    proof = TextAreaField("Proof (needed for an opt-in): what the contact agreed to, when and where",
                          validators=[Optional(), Length(max=records.PROOF_LENGTH), CleanText(allow="\r\n\t")])
    next = HiddenField()


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _page(tenant, form=None, status=200):
    kept, defaults = services.keywords_of(tenant)
    if form is None:
        form = KeywordsForm(formdata=None, data={
            "opt_out": "\n".join(k.keyword for k in kept if k.action == OPTED_OUT and not defaults),
            "opt_in": "\n".join(k.keyword for k in kept if k.action == OPTED_IN and not defaults)})
    return render_template("portal/consent.html", form=form, keywords=kept, defaults=defaults,
                           default_keywords=keywords.DEFAULTS), status


@bp.get("/consent")
@tenant_required
@allowed("consent")
def index(tenant):
    return _page(tenant)


@bp.post("/consent/keywords")
@tenant_required
@allowed("consent")
def save_keywords(tenant):
    form = KeywordsForm()
    if form.validate_on_submit():
        entries = ([(k, OPTED_OUT) for k in _lines(form.opt_out.data)]
                   + [(k, OPTED_IN) for k in _lines(form.opt_in.data)])
        try:
            services.replace_keywords(tenant, entries)
        except keywords.KeywordError as exc:
            form.opt_out.errors.append(exc.message)
        else:
            flash("Your keywords are saved." if entries else "The default keywords apply again.", "success")
            return redirect(url_for("portal.consent.index"))
    return _page(tenant, form, 400)


def _back(target: str | None) -> str:
    """Where a contact's consent form returns: the page it came from (a path of ours), else the settings."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target and len(target) < 500:
        return target
    return url_for("portal.consent.index")


@bp.post("/contacts/<contact_id>/consent")
@tenant_required
@allowed("consent")
def record(tenant, contact_id):
    try:
        contact = services.contact_of(tenant, contact_id)
    except NotFound:
        abort(404)
    form = ConsentForm()
    back = _back(form.next.data)
    if not form.validate_on_submit():
        flash("; ".join(e for errors in form.errors.values() for e in errors) or "The form is invalid.", "error")
        return redirect(back)
    try:
        number = services.number_of(tenant, number_id=form.number.data)
        changed = services.record_change(tenant, contact, number, form.state.data, proof=form.proof.data,
                                         source=SOURCE_PORTAL, actor=current_user.email)
    except NotFound:
        abort(404)
    except InvalidRequest as exc:
        flash(" ".join([exc.message, *(m for ms in (exc.details or {}).values() for m in ms)]), "error")
        return redirect(back)
    state = "opted in" if form.state.data == OPTED_IN else "opted out"
    flash(f"The contact is {state} for {number.display_number}." if changed
          else f"The contact already was {state} for {number.display_number}.", "success" if changed else "info")
    return redirect(back)


def contact_consent(contact):
    """For the contact's page: the contact's consent per number, its history, and the form to change it
    (None when the user's role may not see consent)."""
    if not may("consent"):
        return None
    view = services.consent_of(current_user.tenant, contact)
    form = ConsentForm(formdata=None, data={"next": request.path})
    form.number.choices = [SelectChoice(n.number_id, n.display_number) for n in view.numbers]
    return {"view": view, "form": form, "labels": {OPTED_IN: "opted in", OPTED_OUT: "opted out"}}


bp.add_app_template_global(contact_consent, "contact_consent")
