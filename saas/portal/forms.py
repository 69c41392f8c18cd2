from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Regexp, ValidationError
from wtforms.widgets import HiddenInput

from saas.tenants.security import PASSWORD_RULE
from saas.tenants.services import MIN_PASSWORD
from saas.text import CleanText


class StrongPassword:
    """zxcvbn's estimate (saas.tenants.security.password_problem); its feedback is the error.

    ``inputs`` name other fields of the form (email, company) the password should not be made of.
    """

    def __init__(self, inputs: tuple[str, ...] = ()):
        self.inputs = inputs

    def __call__(self, form, field):
        from saas.tenants.security import password_problem

        if field.errors:  # too short or too long already said
            return
        values = []
        for name in self.inputs:
            value = getattr(form, name).data or ""
            values += [value, value.split("@")[0]]
        problem = password_problem(field.data or "", tuple(values))
        if problem:
            raise ValidationError(problem)


class SignupForm(FlaskForm):
    company = StringField("Company name", validators=[DataRequired(), Length(max=200), CleanText()])
    email = EmailField("Work email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200),
                                                     StrongPassword(inputs=("email", "company"))],
                             description=PASSWORD_RULE)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", validators=[Length(max=100), CleanText()])


class ConfirmForm(FlaskForm):
    """A button that posts: only the CSRF token."""


class PlanChoiceForm(FlaskForm):
    """A plan button on the billing page: the plan, and this page's attempt id (one Stripe create per submission)."""

    plan = HiddenField(validators=[DataRequired(), Length(max=40), CleanText()])
    attempt = HiddenField(validators=[DataRequired(), Regexp(r"^[0-9a-f]{16,64}$")])


class PlanChangeForm(PlanChoiceForm):
    """Confirming a previewed plan change: also the proration date the preview was computed for."""

    proration_date = IntegerField(widget=HiddenInput(), validators=[DataRequired()])


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


class ConnectNumberForm(FlaskForm):
    """A live number's ids and token; checked against the Graph API by the service before anything is kept."""

    phone_number_id = StringField("Phone number ID", filters=[_stripped])
    waba_id = StringField("WhatsApp Business Account ID", filters=[_stripped])
    # A password field: the token is never sent back to the browser, not even after an error.
    access_token = PasswordField("System-user access token", filters=[_stripped])

    def validate(self, extra_validators=None) -> bool:
        from saas.messaging.numbers.connections import input_problems

        valid = super().validate(extra_validators)
        for name, problem in input_problems(self.phone_number_id.data, self.waba_id.data,
                                             self.access_token.data).items():
            getattr(self, name).errors.append(problem)
            valid = False
        return valid


class TemplateForm(FlaskForm):
    """A new message template, submitted to WhatsApp for review."""

    waba_id = SelectField("WhatsApp Business Account", choices=[], validate_choice=True)
    name = StringField("Name", validators=[DataRequired(), Length(max=512), CleanText()],
                       description="Lowercase letters, digits and underscores, e.g. order_shipped.")
    language = StringField("Language", default="en_US", validators=[DataRequired(), Length(max=15), CleanText()])
    category = SelectField("Category", choices=[SelectChoice("UTILITY", "Utility"),
                                                SelectChoice("MARKETING", "Marketing"),
                                                SelectChoice("AUTHENTICATION", "Authentication")])
    components = TextAreaField(
        "Components (JSON)", validators=[DataRequired(), Length(max=32 * 1024), CleanText(allow="\r\n\t")],
        default='[{"type": "BODY", "text": "Hello {{1}}, your order {{2}} has shipped."}]')


class WebhookForm(FlaskForm):
    url = StringField("Webhook URL", validators=[DataRequired(), Length(max=2048)])
