"""The contacts pages' forms: every input bounded to its column; what the values mean is checked by the
contacts services, whose FieldProblem is shown next to the field it names (``show_problem``)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from saas.contacts.models import ATTRIBUTE_TYPES
from saas.text import CleanText


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


class ContactForm(FlaskForm):
    """A contact's WhatsApp number, name and labels; its attributes are inputs of their own (``attr-<key>``),
    one per definition, read by the view."""

    wa_id = StringField("WhatsApp number", filters=[_stripped],
                        validators=[DataRequired(), Length(max=40), CleanText()],
                        description="With its country code, such as +90 532 123 45 67.")
    name = StringField("Name", filters=[_stripped], validators=[Length(max=200), CleanText()])
    labels = StringField("Labels", filters=[_stripped], validators=[Length(max=2000), CleanText()],
                         description="Separated by ; or |, such as vip; izmir.")


class EditContactForm(ContactForm):
    wa_id = None  # what a contact is keyed on does not change


class BulkLabelForm(FlaskForm):
    """Labels added to or removed from the contacts ticked in the list."""

    label = StringField("Label", filters=[_stripped], validators=[DataRequired(), Length(max=50), CleanText()])
    action = SelectField("", choices=[SelectChoice("add", "Add to the ticked contacts"),
                                      SelectChoice("remove", "Remove from the ticked contacts")])


class AttributeForm(FlaskForm):
    key = StringField("Key", filters=[_stripped], validators=[DataRequired(), Length(max=40), CleanText()],
                      description="Lowercase letters, digits and underscores, such as city or loyalty_points.")
    type = SelectField("Type", choices=[SelectChoice(kind, kind.capitalize()) for kind in ATTRIBUTE_TYPES])


class ImportForm(FlaskForm):
    """A CSV of contacts, and whether they opted in (to which number, with what proof)."""

    file = FileField("CSV file", description="UTF-8, with a header row: a column of WhatsApp numbers, and any of "
                                             "name, labels and your attributes.")
    opt_in = BooleanField("These contacts opted in to marketing messages")
    phone_number_id = SelectField("Opted in to", choices=[], validate_choice=False,
                                  validators=[Optional(), Length(max=64)])
    consent_proof = TextAreaField("Proof of opt-in", filters=[_stripped],
                                  validators=[Length(max=1000), CleanText(allow="\r\n\t")],
                                  description="What they agreed to and where, such as the sign-up form's wording.")


def show_problem(form, problem, fallback: str | None = None) -> bool:
    """Put a contacts service's FieldProblem (or an InvalidRequest's details) next to the fields they name;
    True when every problem found a field (else the caller says it at the top of the page)."""
    placed = True
    for name, reasons in (problem.details or {}).items():
        target = getattr(form, name.replace("-", "_"), None) if isinstance(name, str) else None
        if target is None and fallback:
            target = getattr(form, fallback, None)
        if target is None or not hasattr(target, "errors"):
            placed = False
            continue
        if not isinstance(target.errors, list):
            target.errors = list(target.errors)
        target.errors.extend(reasons)
    return placed
