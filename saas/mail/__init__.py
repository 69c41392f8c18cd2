"""Outgoing email: one mailer per app, built from MAIL_URL; ``send_mail`` is what other areas call.

MAIL_URL: ``smtp://user:pass@host:587?starttls=1`` (STARTTLS), ``smtps://user:pass@host:465``
(TLS from the first byte), ``smtp://host:25`` (plain, e.g. a local relay), or unset / ``log://``:
each message is written to the log (development), text included.

A slow or failing SMTP server never delays or breaks a page: ``send_mail`` hands the message on and
returns. With REDIS_URL each message is an RQ job of its own, on Redis before ``send_mail`` returns
(so a message sent from a job, whose work-horse process ends with it, is not lost with it); the
worker tries it once per run and RQ runs it again MAIL_RETRIES times, after MAIL_RETRY_SECONDS
(doubling, whole seconds), then keeps it among its failed jobs (``rq requeue`` sends it again).
Without Redis, or while it cannot be reached, a request's email is delivered by the process's
background queue after the response; a job's or a command's (which may end right after) before
``send_mail`` returns; either way with the same retries in-process, then logged and dropped.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)


class MailConfigError(ValueError):
    pass


def build_message(sender: str, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


class LogMailer:
    """Development: every message is a log line (JSON with the rest), its text included."""

    def __init__(self, sender: str):
        self.sender = sender

    def send(self, message: EmailMessage) -> None:
        body = message.get_body(("plain",))
        log.info("email to %s: %s\n%s", message["To"], message["Subject"],
                 body.get_content() if body is not None else "")


@dataclass
class SmtpMailer:
    sender: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False  # smtps: TLS from the first byte
    starttls: bool = False
    timeout: float = 10.0

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def build(config):
    """The mailer MAIL_URL describes (a LogMailer when unset)."""
    sender = config.get("MAIL_FROM") or "Relay <no-reply@localhost>"
    url = (config.get("MAIL_URL") or "log://").strip()
    parts = urlsplit(url)
    if parts.scheme == "log":
        return LogMailer(sender)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailConfigError("MAIL_URL must be smtp://[user:pass@]host[:port][?starttls=1], smtps://... or log://")
    query = parse_qs(parts.query)
    tls = parts.scheme == "smtps"
    return SmtpMailer(
        sender=sender, host=parts.hostname, port=parts.port or (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls, starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
        timeout=float(config.get("MAIL_TIMEOUT_SECONDS", 10.0)))


def init_app(app) -> None:
    app.extensions["mailer"] = build(app.config)


class MailNotSent(RuntimeError):
    """The SMTP server refused or could not be reached: the RQ job raises it so that RQ tries again."""


def send_mail(to: str, subject: str, text: str, html: str | None = None) -> None:
    """Hand one email on for delivery (see the module's docstring for where it goes). From a request it returns
    at once; from a job or a command without Redis it returns once the email is sent or given up on."""
    from flask import current_app, has_request_context

    from saas import jobs

    if jobs.queue_now("saas.mail.send_one", to, subject, text, html, retry_waits=retry_waits(current_app.config)):
        return
    if has_request_context() and not jobs.in_job():
        jobs.enqueue("saas.mail.deliver", to, subject, text, html)  # after the response
    else:
        deliver(to, subject, text, html)  # a job or a command: nothing waits for it, and it may end next


def retry_waits(config) -> list[int]:
    """RQ's waits before each retry of a queued email: MAIL_RETRY_SECONDS doubling, in whole seconds."""
    wait = float(config.get("MAIL_RETRY_SECONDS", 2.0))
    return [round(wait * 2 ** attempt) for attempt in range(int(config.get("MAIL_RETRIES", 3)))]


def send_one(to: str, subject: str, text: str, html: str | None = None) -> None:
    """The RQ job of one email: one attempt; raises MailNotSent when it failed (RQ retries it)."""
    from flask import current_app
    from rq import get_current_job

    mailer = current_app.extensions["mailer"]
    try:
        mailer.send(build_message(mailer.sender, to, subject, text, html))
    except (smtplib.SMTPException, OSError) as exc:
        job = get_current_job()
        if job is not None and not job.retries_left:
            log.error("email to %s (%s) not sent after its last attempt (%s); kept among RQ's failed jobs as %s",
                      to, subject, exc, job.id)
        else:
            log.warning("email to %s (%s) failed (%s); RQ will try again", to, subject, exc)
        raise MailNotSent(f"email to {to} ({subject}) not sent: {exc}") from exc


def deliver(to: str, subject: str, text: str, html: str | None = None) -> bool:
    """Send now, retrying a failed attempt; True once delivered. Never raises for the SMTP server's failures."""
    from flask import current_app

    mailer = current_app.extensions["mailer"]
    message = build_message(mailer.sender, to, subject, text, html)
    retries = int(current_app.config.get("MAIL_RETRIES", 3))
    wait = float(current_app.config.get("MAIL_RETRY_SECONDS", 2.0))
    for attempt in range(retries + 1):
        try:
            mailer.send(message)
            return True
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("email to %s (%s) failed on attempt %d: %s", to, subject, attempt + 1, exc)
            if attempt < retries:
                time.sleep(wait * (2 ** attempt))
    log.error("email to %s (%s) dropped after %d attempts", to, subject, retries + 1)
    return False
