"""The inbox pages: the queue (/inbox), a thread with its composer, assignment, notes and status.

For members whose role answers the inbox (owner, admin, agent) on a plan with it. A page works by reloading;
saas/static/js/inbox.js keeps it live from /inbox/stream (saas.portal.inbox_live).
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import Length, NumberRange, Optional

from saas.billing import entitlements
from saas.errors import ApiError, NotFound
from saas.inbox import actions, replies
from saas.inbox import queue as listing
from saas.inbox.models import AGENT, OPEN, PENDING, RESOLVED, STATUSES
from saas.inbox.seats import FEATURE
from saas.messaging.outbound import send_service
from saas.portal.access import allowed, tenant_required
from saas.portal.forms import ConfirmForm
from saas.timeutil import utcnow

bp = Blueprint("inbox", __name__)

KINDS = [SelectChoice("text", "Text"), SelectChoice("template", "Template"), SelectChoice("image", "Image link"),
         SelectChoice("document", "Document link"), SelectChoice("video", "Video link")]


class ComposerForm(FlaskForm):
    kind = SelectField("Send", choices=KINDS, default="text")
    text = TextAreaField("Message", validators=[Optional(), Length(max=replies.TEXT_MAX)])
    buttons = StringField("Quick-reply buttons (comma-separated, at most 3)", validators=[Optional(), Length(max=70)])
    saved_reply = SelectField("Saved reply", choices=[], validate_choice=False)
    template = SelectField("Template", choices=[], validate_choice=False)
    variables = TextAreaField("Template variables, one per line", validators=[Optional(), Length(max=8000)])
    link = StringField("Media link (https)", validators=[Optional(), Length(max=2048)])


class NoteForm(FlaskForm):
    body = TextAreaField("Internal note", validators=[Length(min=1, max=actions.NOTE_MAX)])


class AvailabilityForm(FlaskForm):
    available = BooleanField("Take new chats")
    max_open = IntegerField("Most open threads at once",
                            validators=[Optional(), NumberRange(min=1, max=actions.CAP_MAX)])


class SettingsForm(FlaskForm):
    auto_assign = BooleanField("Assign new chats automatically (round robin)")


class SavedReplyForm(FlaskForm):
    shortcut = StringField("Shortcut", validators=[Length(min=1, max=40)])
    body = TextAreaField("Reply", validators=[Length(min=1, max=4096)])


def _rights(tenant):
    return entitlements.for_tenant(tenant)


def _not_in_plan(tenant):
    return render_template("portal/inbox/not_in_plan.html"), 403


def _members(tenant):
    return actions.team_members(tenant)


@bp.get("/inbox")
@tenant_required
@allowed("inbox")
def queue(tenant):
    if not _rights(tenant).may(FEATURE):
        return _not_in_plan(tenant)
    status = request.args.get("status", OPEN)
    status = status if status in STATUSES else OPEN
    q = (request.args.get("q") or "")[: listing.QUERY_MAX].replace("\x00", "") or None
    mine = request.args.get("mine") == "1"
    threads = listing.queue(tenant, status=status, q=q, assignee=current_user.id if mine else None)
    agent = actions.agent_row(tenant, current_user.id)
    return render_template(
        "portal/inbox/queue.html", threads=threads, status=status, q=q or "", mine=mine, now=utcnow(),
        time_left=listing.time_left, members={m.id: m for m in _members(tenant)},
        availability=AvailabilityForm(available=agent.available, max_open=agent.max_open),
        settings=SettingsForm(auto_assign=actions.settings_of(tenant).auto_assign),
        may_configure=current_user.role != AGENT, saved=actions.saved_replies(tenant), saved_form=SavedReplyForm())


def thread_context(tenant, thread, form=None, error=None):
    window = replies.window_of(thread)
    templates = replies.approved_templates(thread)
    form = form or ComposerForm(kind="text" if window.open else "template")
    form.template.choices = [SelectChoice(f"{t.name}|{t.language}",
                                          f"{t.name} ({t.language}, {replies.variables_of(t)} variables)")
                             for t in templates]
    saved = actions.saved_replies(tenant)
    form.saved_reply.choices = [SelectChoice("", "—")] + [SelectChoice(str(s.id), s.shortcut) for s in saved]
    return dict(thread=thread, entries=listing.entries(tenant, thread), window=window, now=utcnow(), form=form,
                error=error, note_form=NoteForm(), confirm=ConfirmForm(), members=_members(tenant),
                time_left=listing.time_left, member_names={m.id: m.email for m in _members(tenant)}, saved=saved)


@bp.get("/inbox/threads/<thread_id>")
@tenant_required
@allowed("inbox")
def thread(tenant, thread_id):
    if not _rights(tenant).may(FEATURE):
        return _not_in_plan(tenant)
    try:
        row = actions.get_thread(tenant, thread_id)
    except NotFound:
        abort(404)
    actions.mark_read(tenant, row)
    return render_template("portal/inbox/thread.html", **thread_context(tenant, row))


def _reply_of(tenant, form) -> dict:
    kind = form.kind.data
    if kind == "template":
        name, _, language = (form.template.data or "").partition("|")
        variables = [v.strip() for v in (form.variables.data or "").splitlines() if v.strip()]
        return {"type": "template", "template": {"name": name, "language": language, "variables": variables}}
    if kind in ("image", "document", "video"):
        return {"type": kind, "media": {"link": form.link.data, "caption": form.text.data or None}}
    text = form.text.data
    if not text and form.saved_reply.data:
        text = replies.saved_reply_text(tenant, form.saved_reply.data)
    buttons = [b.strip() for b in (form.buttons.data or "").split(",") if b.strip()]
    return {"type": "text", "text": text, "buttons": buttons}


@bp.post("/inbox/threads/<thread_id>/reply")
@tenant_required
@allowed("inbox")
def reply(tenant, thread_id):
    try:
        row = actions.get_thread(tenant, thread_id)
    except NotFound:
        abort(404)
    form = ComposerForm()
    if not form.validate_on_submit():
        return render_template("portal/inbox/thread.html", **thread_context(tenant, row, form)), 400
    try:
        replies.send_reply(send_service(current_app), tenant, _rights(tenant), row, _reply_of(tenant, form),
                           author=AGENT, user_id=current_user.id)
    except ApiError as exc:
        row = actions.get_thread(tenant, thread_id)
        status = exc.status if 400 <= exc.status < 500 else 502
        return render_template("portal/inbox/thread.html",
                               **thread_context(tenant, row, form, error=(exc.code, exc.message))), status
    flash("Sent.", "success")
    return redirect(url_for("portal.inbox.thread", thread_id=thread_id), 303)


@bp.post("/inbox/threads/<thread_id>/status")
@tenant_required
@allowed("inbox")
def set_status(tenant, thread_id):
    status = request.form.get("status")
    if not ConfirmForm().validate_on_submit() or status not in (OPEN, PENDING, RESOLVED):
        abort(400)
    try:
        actions.set_status(tenant, thread_id, status, user_id=current_user.id)
    except NotFound:
        abort(404)
    return redirect(url_for("portal.inbox.thread", thread_id=thread_id), 303)


@bp.post("/inbox/threads/<thread_id>/assign")
@tenant_required
@allowed("inbox")
def assign(tenant, thread_id):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user_id = request.form.get("assignee_id") or None
    try:
        actions.assign(tenant, thread_id, user_id, by=current_user.id)
    except NotFound:
        abort(404)
    return redirect(url_for("portal.inbox.thread", thread_id=thread_id), 303)


@bp.post("/inbox/threads/<thread_id>/notes")
@tenant_required
@allowed("inbox")
def add_note(tenant, thread_id):
    form = NoteForm()
    try:
        row = actions.get_thread(tenant, thread_id)
    except NotFound:
        abort(404)
    if not form.validate_on_submit():
        return render_template("portal/inbox/thread.html", **thread_context(tenant, row)), 400
    try:
        actions.add_note(tenant, thread_id, form.body.data, user_id=current_user.id)
    except ApiError as exc:
        return render_template("portal/inbox/thread.html",
                               **thread_context(tenant, row, error=(exc.code, exc.message))), 400
    return redirect(url_for("portal.inbox.thread", thread_id=thread_id), 303)


@bp.post("/inbox/availability")
@tenant_required
@allowed("inbox")
def availability(tenant):
    form = AvailabilityForm()
    if not form.validate_on_submit():
        abort(400)
    actions.set_availability(tenant, current_user.id, available=form.available.data, max_open=form.max_open.data)
    return redirect(url_for("portal.inbox.queue"), 303)


@bp.post("/inbox/settings")
@tenant_required
@allowed("inbox")
def settings(tenant):
    form = SettingsForm()
    if current_user.role == AGENT:
        abort(403)
    if not form.validate_on_submit():
        abort(400)
    actions.set_auto_assign(tenant, form.auto_assign.data)
    return redirect(url_for("portal.inbox.queue"), 303)


@bp.post("/inbox/saved-replies")
@tenant_required
@allowed("inbox")
def add_saved_reply(tenant):
    form = SavedReplyForm()
    if not form.validate_on_submit():
        flash("A saved reply needs a shortcut (1 to 40 characters) and a text.", "error")
        return redirect(url_for("portal.inbox.queue"), 303)
    try:
        actions.add_saved_reply(tenant, form.shortcut.data, form.body.data)
    except ApiError as exc:
        flash(exc.message, "error")
    return redirect(url_for("portal.inbox.queue"), 303)
