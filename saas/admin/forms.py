from flask_wtf import FlaskForm
from wtforms import SelectField


class ConfirmForm(FlaskForm):
    """A button that posts: only the CSRF token."""


class AssignPlanForm(FlaskForm):
    # Choices are set per tenant: the active plans, and the tenant's current one.
    plan = SelectField("Plan", choices=[])
