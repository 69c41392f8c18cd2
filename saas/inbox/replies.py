"""The composer: a reply into a thread, under WhatsApp's rules, through the send service.

While the customer's 24-hour window is open a reply may be free text (with up to three quick-reply
buttons), media (by media id or link, with a caption) or a saved reply; once it has closed, only an
approved template of the number's account, its variables filled, may go: anything else is refused with
``window_closed`` (409) before the send service is asked, and nothing is sent, written or billed. The send
service meters the reply and checks every rule again; Meta's refusal of a send is written into the thread
(the failed entry shows why) and raised to the caller.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app, has_app_context
from sqlalchemy import select

from saas import events
from saas.errors import ApiError, InvalidRequest, NotFound, OutsideCustomerServiceWindow, UpstreamError
from saas.extensions import db
from saas.ids import parse_id
from saas.inbox import live, rendering, threads
from saas.inbox.models import AGENT, Entry, SavedReply, Thread
from saas.inbox.seats import FEATURE
from saas.messaging.models import PhoneNumber, ServiceWindow, Template
from saas.messaging.outbound import payloads
from saas.timeutil import iso, utcnow

TEXT_MAX = 4096
CAPTION_MAX = 1024
VARIABLE_MAX = 1024
MEDIA_TYPES = ("image", "video", "audio", "document")
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class WindowClosed(ApiError):
    status = 409
    code = "window_closed"
    graph_code = 131047
    message = ("The customer's 24-hour customer-service window has closed: free-form replies are refused until "
               "they write again. Send an approved template instead.")


@dataclass(frozen=True)
class Window:
    open: bool
    expires_at: object  # datetime or None


def window_of(thread, now=None) -> Window:
    """The thread's customer-service window as the send service judges it (the one inbound webhooks keep)."""
    now = now or utcnow()
    expires_at = db.session.scalar(select(ServiceWindow.expires_at).where(
        ServiceWindow.tenant_id == thread.tenant_id, ServiceWindow.phone_number_id == thread.phone_number_id,
        ServiceWindow.contact == thread.wa_id))
    return Window(expires_at is not None and expires_at > now, expires_at)


def approved_templates(thread) -> list[Template]:
    """The templates the thread's number may send now (approved, of its WhatsApp Business Account)."""
    waba_id = db.session.scalar(select(PhoneNumber.waba_id).where(PhoneNumber.id == thread.phone_number_id))
    return list(db.session.scalars(select(Template).where(
        Template.tenant_id == thread.tenant_id, Template.waba_id == (waba_id or "0"), Template.status == "APPROVED")
        .order_by(Template.name, Template.language)))


def variables_of(template: Template) -> int:
    """How many {{n}} variables the template's body has."""
    body = next((c for c in template.components or [] if isinstance(c, dict) and str(c.get("type")).upper() == "BODY"),
                {})
    numbers = [int(n) for n in PLACEHOLDER.findall(str(body.get("text") or ""))]
    return max(numbers, default=0)


def _text(value, field: str, limit: int, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"'{field}' is required.", details={field: ["Missing data for required field."]})
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise InvalidRequest(f"'{field}' must be text of at most {limit} characters, without NUL.",
                             details={field: [f"At most {limit} characters, no NUL."]})
    return value


def _template_body(thread, spec) -> dict:
    if not isinstance(spec, dict):
        raise InvalidRequest("'template' must be an object with 'name', 'language' and 'variables'.",
                             details={"template": ["Must be an object."]})
    name = _text(spec.get("name"), "template.name", 512)
    language = _text(spec.get("language") or "en_US", "template.language", 15)
    variables = spec.get("variables") or []
    if not isinstance(variables, list) or len(variables) > 20:
        raise InvalidRequest("'template.variables' is a list of at most 20 texts.",
                             details={"template.variables": ["A list of at most 20 texts."]})
    variables = [_text(v, "template.variables", VARIABLE_MAX) for v in variables]
    template = next((t for t in approved_templates(thread) if t.name == name and t.language == language), None)
    if template is None:
        raise InvalidRequest("No approved template with this name and language for this number.",
                             details={"template.name": ["Not an approved template of this number."]})
    if len(variables) != variables_of(template):
        raise InvalidRequest(f"This template has {variables_of(template)} variables; fill each one.",
                             details={"template.variables": [f"Exactly {variables_of(template)} values."]})
    body = {"name": name, "language": {"code": language}}
    if variables:
        body["components"] = [{"type": "body", "parameters": [{"type": "text", "text": v} for v in variables]}]
    return body


def cloud_body(thread, reply: dict) -> dict:
    """The Cloud API body of a reply (see the module's docstring for the kinds); InvalidRequest if malformed."""
    if not isinstance(reply, dict):
        raise InvalidRequest("The reply must be a JSON object.")
    kind = reply.get("type", "text")
    base = {"messaging_product": "whatsapp", "to": thread.wa_id}
    if kind == "text":
        text = _text(reply.get("text"), "text", TEXT_MAX)
        buttons = reply.get("buttons") or []
        if not isinstance(buttons, list) or len(buttons) > 3:
            raise InvalidRequest("'buttons' is a list of at most 3 titles.", details={"buttons": ["At most 3."]})
        titles = [_text(b, "buttons", 20) for b in buttons]
        if titles:
            return {**base, "type": "interactive", "interactive": {
                "type": "button", "body": {"text": text[:1024]},
                "action": {"buttons": [{"type": "reply", "reply": {"id": f"quick-{i + 1}", "title": t}}
                                       for i, t in enumerate(titles)]}}}
        return {**base, "type": "text", "text": {"body": text}}
    if kind in MEDIA_TYPES:
        media = reply.get("media") if isinstance(reply.get("media"), dict) else {}
        body = {}
        if media.get("id"):
            body["id"] = _text(media.get("id"), "media.id", 128)
        else:
            body["link"] = _text(media.get("link"), "media.link", 2048)
        caption = _text(media.get("caption"), "media.caption", CAPTION_MAX, required=False)
        if caption and kind != "audio":
            body["caption"] = caption
        return {**base, "type": kind, kind: body}
    if kind == "template":
        return {**base, "type": "template", "template": _template_body(thread, reply.get("template"))}
    raise InvalidRequest("'type' is one of text, image, video, audio, document or template.",
                         details={"type": ["Unknown reply type."]})


def saved_reply_text(tenant, saved_reply_id) -> str:
    saved_reply_id = parse_id(saved_reply_id)
    row = None
    if saved_reply_id is not None:
        row = db.session.scalar(select(SavedReply.body).where(SavedReply.tenant_id == tenant.id,
                                                              SavedReply.id == saved_reply_id))
    if row is None:
        raise NotFound("No such saved reply.")
    return row


def send_reply(sender, tenant, rights, thread: Thread, reply: dict, *, author: str = AGENT,
               user_id: int | None = None) -> int:
    """Send ``reply`` into ``thread`` through ``sender`` (the send service); the new entry's id. Commits.

    Raises FeatureNotInPlan/PaymentRequired (no inbox), WindowClosed (free-form past the window),
    InvalidRequest (a malformed reply, an unknown template, variables missing), and whatever the send
    service raises (quota, WhatsApp's rules, UpstreamError: then the failed entry is in the thread).
    """
    rights.require(FEATURE, "the inbox")
    body = cloud_body(thread, reply)
    window = window_of(thread)
    if body["type"] != "template" and not window.open:
        raise WindowClosed(details={"thread_id": thread.id, "window_expires_at": iso(window.expires_at)})
    message = payloads.outbound_item(body)
    phone_number_id = db.session.scalar(select(PhoneNumber.phone_number_id).where(
        PhoneNumber.id == thread.phone_number_id, PhoneNumber.tenant_id == thread.tenant_id))
    kind, content, line = rendering.outbound(body)
    thread_id, tenant_id, wa_id, number_pk = thread.id, thread.tenant_id, thread.wa_id, thread.phone_number_id
    db.session.rollback()  # no transaction held while WhatsApp is called
    record = dict(number_pk=number_pk, wa_id=wa_id, author=author, author_user_id=user_id, kind=kind,
                  content=content, line=line)
    try:
        outcome = sender.send(tenant, rights, phone_number_id, message.payload, upstream=message.upstream)
    except OutsideCustomerServiceWindow:
        raise WindowClosed(details={"thread_id": thread_id}) from None
    except UpstreamError as exc:
        message_id = (exc.details or {}).get("message_id")
        if message_id:
            _record(tenant_id, message_id, None, "failed", record, error_code=(exc.details or {}).get("whatsapp_code"),
                    error_title=exc.message)
        raise
    return _record(tenant_id, outcome.message_id, outcome.wa_message_id, "accepted", record)


def _record(tenant_id, message_id, wa_message_id, status, record, *, error_code=None, error_title=None) -> int:
    conn = db.session.connection()
    threads.record_outbound(conn, tenant_id, message_id=message_id, wa_message_id=wa_message_id, status=status,
                            at=utcnow(), error_code=error_code if isinstance(error_code, int) else None,
                            error_title=(error_title or "")[:300] or None, **record)
    entry_id = db.session.scalar(select(Entry.id).where(Entry.tenant_id == tenant_id, Entry.message_id == message_id))
    events.commit(db.session)
    if has_app_context():
        live.for_app(current_app).notify([tenant_id])
    return entry_id
