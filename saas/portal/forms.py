from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
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


class WebhookForm(FlaskForm):
    url = StringField("Webhook URL", validators=[DataRequired(), Length(max=2048)])
