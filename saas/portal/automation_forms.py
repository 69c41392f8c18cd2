"""The automation pages' forms, and how a rule form becomes the body saas.automation.rules checks."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import Length, NumberRange, Optional

from saas.automation import matching
from saas.automation.models import MATCHES, TRIGGERS

TRIGGER_NAMES = {"keyword": "A keyword in the message", "first_message": "The contact's first message",
                 "outside_hours": "A message outside business hours", "button": "A button or list reply"}
REPLY_KINDS = [SelectChoice("", "No reply"), SelectChoice("text", "Text"), SelectChoice("template", "Template"),
               SelectChoice("image", "Image link"), SelectChoice("document", "Document link"),
               SelectChoice("keep", "Keep the reply set through the API")]
CONSENT = [SelectChoice("", "Leave consent as it is"), SelectChoice("opt_in", "Opt the contact in"),
           SelectChoice("opt_out", "Opt the contact out")]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Form fields by the error detail keys the rule checks name.
FIELD_OF = {"name": "name", "priority": "priority", "trigger": "trigger", "match": "match", "pattern": "pattern",
            "conditions.labels": "labels", "conditions.from": "time_from", "conditions.to": "time_to",
            "conditions.weekdays": "weekdays", "conditions.numbers": "numbers", "actions.message": "reply_text",
            "actions.message.template": "template", "actions.label": "add_label", "actions.event": "forward_event",
            "actions.user_id": "assign", "actions": "reply_kind", "text.body": "reply_text"}


class RuleForm(FlaskForm):
    name = StringField("Name", validators=[Length(min=1, max=100)])
    enabled = BooleanField("Enabled")
    priority = IntegerField("Priority (lower runs first)", default=100,
                            validators=[NumberRange(min=0, max=1_000_000)])
    stop_after_match = BooleanField("Stop after this rule matches", default=True)
    trigger = SelectField("When", choices=[SelectChoice(t, TRIGGER_NAMES[t]) for t in TRIGGERS])
    match = SelectField("Keyword match", choices=[SelectChoice(m, m) for m in MATCHES], default="contains")
    pattern = StringField("Keyword, pattern or button payload",
                          validators=[Optional(), Length(max=matching.PATTERN_MAX)])
    numbers = SelectMultipleField("Only on these numbers", choices=[], coerce=int, validate_choice=False)
    labels = StringField("Only for contacts with these labels (comma-separated)", validators=[Optional(),
                                                                                               Length(max=500)])
    weekdays = SelectMultipleField("Only on these weekdays", coerce=int, validate_choice=False,
                                   choices=[SelectChoice(n, day) for n, day in enumerate(WEEKDAYS)])
    time_from = StringField("From (HH:MM, your time zone)", validators=[Optional(), Length(max=5)])
    time_to = StringField("To (HH:MM)", validators=[Optional(), Length(max=5)])
    reply_kind = SelectField("Reply", choices=REPLY_KINDS, default="text")
    reply_text = TextAreaField("Reply text or caption ({name} and {wa_id} are filled in)",
                               validators=[Optional(), Length(max=4096)])
    link = StringField("Media link (https)", validators=[Optional(), Length(max=2048)])
    template = StringField("Template name", validators=[Optional(), Length(max=512)])
    language = StringField("Template language", default="en_US", validators=[Optional(), Length(max=15)])
    variables = TextAreaField("Template variables, one per line", validators=[Optional(), Length(max=8000)])
    add_label = StringField("Add label", validators=[Optional(), Length(max=50)])
    remove_label = StringField("Remove label", validators=[Optional(), Length(max=50)])
    assign = SelectField("Assign the thread", choices=[], validate_choice=False)
    consent = SelectField("Marketing consent", choices=CONSENT)
    forward_event = StringField("Forward to your webhook as the event", validators=[Optional(), Length(max=40)])


class HoursForm(FlaskForm):
    holidays = TextAreaField("Holidays, one date per line (YYYY-MM-DD)", validators=[Optional(), Length(max=2000)])


for _day in range(7):
    setattr(HoursForm, f"open_{_day}", StringField(f"{WEEKDAYS[_day]} opens", validators=[Optional(), Length(max=5)]))
    setattr(HoursForm, f"close_{_day}", StringField("closes", validators=[Optional(), Length(max=5)]))


class SettingsForm(FlaskForm):
    timezone = StringField("Time zone (IANA name)", validators=[Length(min=1, max=64)])
    replies_per_hour = IntegerField("Automated replies per customer per hour, at most",
                                    validators=[NumberRange(min=1, max=100)])


def _reply_message(form: RuleForm) -> dict | None:
    kind = form.reply_kind.data
    text = form.reply_text.data or ""
    if kind == "text":
        return {"type": "text", "text": {"body": text}}
    if kind in ("image", "document"):
        media = {"link": form.link.data or ""}
        if text:
            media["caption"] = text
        return {"type": kind, kind: media}
    if kind == "template":
        variables = [line.strip() for line in (form.variables.data or "").splitlines() if line.strip()]
        template = {"name": form.template.data or "", "language": {"code": form.language.data or "en_US"}}
        if variables:
            template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": v}
                                                                      for v in variables]}]
        return {"type": "template", "template": template}
    return None


def rule_body(form: RuleForm, rule=None) -> dict:
    """What the form says, as the API's rule body (``rule``: the one edited, whose reply "keep" keeps)."""
    actions = []
    message = _reply_message(form)
    if form.reply_kind.data == "keep" and rule is not None:
        message = next((a["message"] for a in rule.actions or [] if a["type"] == "reply"), None)
    if message is not None:
        actions.append({"type": "reply", "message": message})
    if form.add_label.data:
        actions.append({"type": "add_label", "label": form.add_label.data})
    if form.remove_label.data:
        actions.append({"type": "remove_label", "label": form.remove_label.data})
    if form.assign.data:
        actions.append({"type": "assign", "user_id": None if form.assign.data == "round_robin"
                        else int(form.assign.data) if form.assign.data.isdigit() else form.assign.data})
    if form.consent.data:
        actions.append({"type": form.consent.data})
    if form.forward_event.data:
        actions.append({"type": "forward", "event": form.forward_event.data})
    conditions = {"numbers": form.numbers.data or [], "weekdays": form.weekdays.data or [],
                  "labels": [label for label in (form.labels.data or "").split(",") if label.strip()]}
    if form.time_from.data or form.time_to.data:
        conditions.update({"from": form.time_from.data, "to": form.time_to.data})
    return {"name": form.name.data, "enabled": bool(form.enabled.data), "priority": form.priority.data,
            "stop_after_match": bool(form.stop_after_match.data), "trigger": form.trigger.data,
            "match": form.match.data, "pattern": form.pattern.data or None, "conditions": conditions,
            "actions": actions}


def fill_from(form: RuleForm, rule) -> None:
    """The form showing ``rule`` (for editing)."""
    form.name.data, form.enabled.data, form.priority.data = rule.name, rule.enabled, rule.priority
    form.stop_after_match.data, form.trigger.data = rule.stop_after_match, rule.trigger
    form.match.data, form.pattern.data = rule.match or "contains", rule.pattern
    conditions = rule.conditions or {}
    form.numbers.data, form.weekdays.data = conditions.get("numbers", []), conditions.get("weekdays", [])
    form.labels.data = ", ".join(conditions.get("labels", []))
    form.time_from.data, form.time_to.data = conditions.get("from"), conditions.get("to")
    form.reply_kind.data = ""
    for action in rule.actions or []:
        kind = action["type"]
        if kind == "reply":
            _fill_reply(form, action["message"])
        elif kind in ("add_label", "remove_label"):
            getattr(form, kind).data = action["label"]
        elif kind == "assign":
            form.assign.data = "round_robin" if action["user_id"] is None else str(action["user_id"])
        elif kind in ("opt_in", "opt_out"):
            form.consent.data = kind
        elif kind == "forward":
            form.forward_event.data = action["event"]


def _fill_reply(form: RuleForm, message: dict) -> None:
    kind = message["type"]
    form.reply_kind.data = kind if kind in ("text", "template", "image", "document") else "keep"
    body = message.get(kind) or {}
    if kind == "text":
        form.reply_text.data = body.get("body")
    elif kind in ("image", "document"):
        form.link.data, form.reply_text.data = body.get("link"), body.get("caption")
    elif kind == "template":
        form.template.data, form.language.data = body.get("name"), (body.get("language") or {}).get("code")
        parameters = [p.get("text", "") for c in body.get("components") or [] for p in c.get("parameters") or []]
        form.variables.data = "\n".join(parameters)


def show_errors(form, details: dict | None, fallback: str) -> list[str]:
    """Put the rule checks' complaints next to their fields; those no field shows come back as lines."""
    unplaced = []
    for key, reasons in (details or {}).items():
        name = FIELD_OF.get(key)
        reasons = reasons if isinstance(reasons, list) else [str(reasons)]
        if name is not None and hasattr(form, name):
            getattr(form, name).errors = list(getattr(form, name).errors or []) + [str(r) for r in reasons]
        else:
            unplaced.extend(f"{key}: {r}" for r in reasons)
    return unplaced or ([] if details else [fallback])
