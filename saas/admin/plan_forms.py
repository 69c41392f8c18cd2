"""The admin's plan forms: every input bounded to the column it fills."""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (DataRequired, InputRequired, Length, NumberRange, Optional, Regexp,
                                StopValidation)
from wtforms.widgets import CheckboxInput, ListWidget

from saas.billing.entitlements import MULTI_NUMBER
from saas.billing.models import CATEGORIES, FEATURE_NAMES, UNIT_CONVERSATIONS, UNIT_MESSAGES
from saas.billing.money import CENTS_MAX, CENTS_PLACES, decimal_places, plain_decimal

INT32_MAX = 2**31 - 1
# Stripe refuses unit amounts past eight digits (999,999.99 in a two-decimal currency).
STRIPE_AMOUNT_MAX = int(CENTS_MAX)
# Stripe's longest trial.
TRIAL_DAYS_MAX = 730
CODE_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
INTERVALS = [SelectChoice("month", "Monthly"), SelectChoice("year", "Yearly")]
UNITS = [SelectChoice(UNIT_CONVERSATIONS, "Conversation (a 24-hour window per contact and category)"),
         SelectChoice(UNIT_MESSAGES, "Message, of the categories ticked below")]


class Between(NumberRange):
    """NumberRange that stays quiet when the input was no whole number (that error says it)."""

    def __call__(self, form, field):
        if field.data is not None:
            super().__call__(form, field)


class NoControlCharacters:
    """Refuses NUL and other control characters (a NUL also breaks PostgreSQL text)."""

    def __init__(self, allow: str = ""):
        self.allow = set(allow)

    def __call__(self, form, field):
        for char in field.data or "":
            if char not in self.allow and unicodedata.category(char) == "Cc":
                raise StopValidation("Control characters (such as NUL) are not allowed.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _lower(value):
    return value.lower() if isinstance(value, str) else value


class CentsField(StringField):
    """An amount of cents that may hold a fraction of a cent (as Stripe's unit_amount_decimal): a Decimal,
    or None when left empty. Plain digits with an optional point only: no sign, exponent, NaN or infinity."""

    PATTERN = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")  # ASCII digits: \d would take "１" too

    def process_formdata(self, valuelist):
        self.data = None
        text = (valuelist[0] if valuelist else "").strip()
        if not text:
            return
        if not self.PATTERN.fullmatch(text):
            raise ValueError("A number of cents, such as 3, 0.5 or 1.25.")
        self.data = Decimal(text)

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return plain_decimal(self.data) if self.data is not None else ""


def _positive_cents(form, field):
    if field.data is None:
        return
    if decimal_places(field.data) > CENTS_PLACES:
        raise StopValidation(f"At most {CENTS_PLACES} decimal places.")
    if not 0 < field.data <= CENTS_MAX:
        raise StopValidation(f"Must be more than 0 and at most {CENTS_MAX}.")


def _count(label: str, minimum: int = 0, maximum: int = INT32_MAX, description: str = "", default=None):
    return IntegerField(label, validators=[InputRequired(), Between(min=minimum, max=maximum)],
                        description=description, default=default)


class PlanForm(FlaskForm):
    """A plan's terms; ``code`` only when it is created (lookup keys are made from it)."""

    code = StringField("Code", filters=[_strip],
                       validators=[DataRequired(), Length(max=40), NoControlCharacters(),
                                   Regexp(CODE_PATTERN, message="Lowercase letters, digits and dashes only.")],
                       description="Lowercase letters, digits and dashes; fixed once created (Stripe's lookup key).")
    name = StringField("Name", filters=[_strip], validators=[DataRequired(), Length(max=100), NoControlCharacters()])
    description = TextAreaField("Description", filters=[_strip],
                                validators=[Length(max=2000), NoControlCharacters(allow="\r\n\t")])
    price_cents = _count("Price per interval, in cents", maximum=STRIPE_AMOUNT_MAX,
                         description="0 makes a free plan, which is never sold through Stripe.")
    currency = StringField("Currency", default="usd", filters=[_strip, _lower],
                           validators=[InputRequired(), NoControlCharacters(),
                                       Regexp(r"^[a-z]{3}$", message="A three-letter ISO code, such as usd.")])
    interval = SelectField("Billing interval", choices=INTERVALS, default="month")
    billing_unit = SelectField("Billed per", choices=UNITS, default=UNIT_CONVERSATIONS)
    included_conversations = _count("Conversations included per period", default=0)
    included_messages = IntegerField("Messages included per period", default=0,
                                     validators=[Optional(), Between(min=0, max=INT32_MAX)],
                                     description="For plans billed per message: messages of the ticked categories.")
    message_categories = SelectMultipleField(
        "Categories billed per message", choices=[SelectChoice(c, c.capitalize()) for c in CATEGORIES],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        description="Messages of the categories not ticked are free and count against nothing.")
    overage_cents = CentsField("Price per extra conversation, in cents",
                               validators=[Optional(), _positive_cents],
                               description="Per extra conversation, or per extra message on plans billed per "
                                           "message. Fractions of a cent are allowed, such as 0.5 or 1.25 (at most "
                                           "12 decimal places). Leave empty for a hard cap: nothing past the "
                                           "included amount.")
    rate_limit_per_minute = _count("API requests per minute", minimum=1, default=60)
    phone_numbers_allowed = _count("Phone numbers allowed", minimum=1, default=1,
                                   description="Live numbers a tenant may connect (the sandbox number does not "
                                               "count). More than 1 needs the feature “Several phone numbers”.")
    features = SelectMultipleField("Features", choices=[SelectChoice(code, label) for code, label in FEATURE_NAMES.items()],
                                   widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    max_contacts = IntegerField("Contacts stored, at most", validators=[Optional(), Between(min=0, max=INT32_MAX)],
                                description="Leave empty for no limit. Contacts created from inbound messages are "
                                            "always stored; the API, the portal and imports stop at the limit.")
    max_broadcast_recipients = IntegerField("Recipients per broadcast, at most",
                                            validators=[Optional(), Between(min=0, max=INT32_MAX)],
                                            description="Leave empty for no limit.")
    consent_managed_by_tenant = BooleanField(
        "Tenants manage marketing consent themselves",
        description="Their marketing templates are not held back for want of an opt-in recorded here; an opt-out "
                    "(STOP, WhatsApp's stop, or one they record) still holds them back.")
    inbox_seats = IntegerField("Inbox seats", validators=[Optional(), Between(min=0, max=INT32_MAX)],
                               description="Members with the agent role the inbox allows (with “Support inbox”); "
                                           "empty: no limit.")
    trial_days = _count("Free trial, in days", maximum=TRIAL_DAYS_MAX, description="0 for none.", default=0)
    sort_order = _count("Sort order", description="Plans are listed from the lowest.", default=0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The price is per unit of what the plan bills: say which, as the plan (or the form sent) has it.
        if self.billing_unit.data == UNIT_MESSAGES:
            self.overage_cents.label.text = "Price per extra message, in cents"

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        numbers_agree = self._numbers_agree()
        unit_agrees = self._unit_agrees()
        return valid and numbers_agree and unit_agrees

    def _numbers_agree(self) -> bool:
        numbers = self.phone_numbers_allowed
        if numbers.errors or self.features.errors:
            return True
        # The feature is what lets a tenant connect a second live number: the two must say the same.
        several = MULTI_NUMBER in (self.features.data or [])
        if numbers.data > 1 and not several:
            numbers.errors.append(f"More than 1 live number needs the feature “{FEATURE_NAMES[MULTI_NUMBER]}”: "
                                  "tick it, or allow 1.")
        elif numbers.data == 1 and several:
            numbers.errors.append(f"“{FEATURE_NAMES[MULTI_NUMBER]}” is ticked: allow 2 or more, or untick it.")
        return not numbers.errors

    def _unit_agrees(self) -> bool:
        """A plan billed per message names the categories it prices; one billed per conversation names none."""
        categories = self.message_categories
        if self.billing_unit.errors or categories.errors:
            return True
        if self.billing_unit.data == UNIT_MESSAGES and not categories.data:
            categories.errors.append("A plan billed per message prices at least one category: tick one or more.")
        elif self.billing_unit.data == UNIT_CONVERSATIONS and categories.data:
            categories.errors.append("Categories are priced only by plans billed per message: untick them, or bill "
                                     "per message.")
        return not categories.errors

    def terms(self) -> dict:
        """The plan's terms as the catalogue takes them."""
        return {
            "name": self.name.data,
            "description": self.description.data or "",
            "price_cents": self.price_cents.data,
            "currency": self.currency.data,
            "interval": self.interval.data,
            "billing_unit": self.billing_unit.data,
            "included_conversations": self.included_conversations.data,
            "included_messages": self.included_messages.data or 0,
            "message_categories": [c for c in CATEGORIES if c in (self.message_categories.data or [])],
            "overage_cents": self.overage_cents.data,
            "rate_limit_per_minute": self.rate_limit_per_minute.data,
            "phone_numbers_allowed": self.phone_numbers_allowed.data,
            # In the catalogue's order, whatever order the boxes were ticked in.
            "features": [name for name in FEATURE_NAMES if name in (self.features.data or [])],
            "max_contacts": self.max_contacts.data,
            "max_broadcast_recipients": self.max_broadcast_recipients.data,
            "consent_managed_by_tenant": bool(self.consent_managed_by_tenant.data),
            "inbox_seats": self.inbox_seats.data,
            "trial_days": self.trial_days.data,
            "sort_order": self.sort_order.data,
        }


class EditPlanForm(PlanForm):
    code = None


class ConfirmForm(FlaskForm):
    """A button that posts: only the CSRF token."""
