from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from saas.tenants.services import MIN_PASSWORD


class SignupForm(FlaskForm):
    company = StringField("Company name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Work email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200)])


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", validators=[Length(max=100)])


class ConfirmForm(FlaskForm):
    """A button that posts: only the CSRF token."""


class TemplateForm(FlaskForm):
    """A new message template, submitted to WhatsApp for review."""

    waba_id = SelectField("WhatsApp Business Account", choices=[], validate_choice=True)
    name = StringField("Name", validators=[DataRequired(), Length(max=512)],
                       description="Lowercase letters, digits and underscores, e.g. order_shipped.")
    language = StringField("Language", default="en_US", validators=[DataRequired(), Length(max=15)])
    category = SelectField("Category", choices=[SelectChoice("UTILITY", "Utility"),
                                                SelectChoice("MARKETING", "Marketing"),
                                                SelectChoice("AUTHENTICATION", "Authentication")])
    components = TextAreaField(
        "Components (JSON)", validators=[DataRequired(), Length(max=32 * 1024)],
        default='[{"type": "BODY", "text": "Hello {{1}}, your order {{2}} has shipped."}]')
