"""The mailer: MAIL_URL parsing, delivery to a real SMTP server on loopback, the log mode, retries."""
from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from saas import mail


def test_mail_url_builds_the_matching_mailer():
    smtp = mail.build({"MAIL_URL": "smtp://me%40x.com:p%3Ass@mail.example.com:587?starttls=1",
                       "MAIL_FROM": "Relay <r@x.com>"})
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.starttls, smtp.tls) == \
        ("mail.example.com", 587, "me@x.com", "p:ss", True, False)
    smtps = mail.build({"MAIL_URL": "smtps://u:p@mail.example.com"})
    assert (smtps.port, smtps.tls, smtps.starttls) == (465, True, False)
    assert isinstance(mail.build({"MAIL_URL": None}), mail.LogMailer)
    assert isinstance(mail.build({"MAIL_URL": "log://"}), mail.LogMailer)
    with pytest.raises(mail.MailConfigError):
        mail.build({"MAIL_URL": "http://mail.example.com"})


def test_send_mail_returns_at_once_and_the_sink_receives_text_and_html(app, ctx, mailbox):
    mail.send_mail("someone@example.com", "Hello", "Plain text body", html="<p>HTML body</p>")
    assert app.extensions["background"].join()
    [message] = mailbox.to("someone@example.com")
    assert message["Subject"] == "Hello"
    assert message["From"] == "Relay <no-reply@relay.example.com>"
    assert message["Message-ID"]
    assert mailbox.text(message).strip() == "Plain text body"
    assert message.get_body(("html",)).get_content().strip() == "<p>HTML body</p>"


def test_a_failing_smtp_server_is_retried_until_it_accepts(app, ctx, mailbox):
    mailbox.fail_next(2)
    mail.send_mail("someone@example.com", "Retried", "body")
    assert app.extensions["background"].join()
    assert mailbox.sink.attempts == 3
    assert len(mailbox.to("someone@example.com", "Retried")) == 1


def test_a_server_that_keeps_failing_is_given_up_on_and_logged(app, ctx, mailbox, caplog):
    mailbox.fail_next(100)
    with caplog.at_level(logging.WARNING, logger="saas.mail"):
        assert mail.deliver("someone@example.com", "Never", "body") is False
    assert mailbox.sink.attempts == app.config["MAIL_RETRIES"] + 1
    assert "dropped after 4 attempts" in caplog.text


def test_a_silent_smtp_server_never_delays_or_breaks_a_page(app, auth, mailbox):
    # Accepts the connection (the kernel's backlog) and never says a word: each attempt waits out its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    saved = app.extensions["mailer"]
    app.extensions["mailer"] = mail.build({"MAIL_URL": f"smtp://127.0.0.1:{silent.getsockname()[1]}",
                                           "MAIL_FROM": "r@x.com", "MAIL_TIMEOUT_SECONDS": 3.0})
    try:
        started = time.monotonic()
        response = auth.signup(verify=False)
        assert response.status_code == 303 and response.headers["Location"] == "/signup/check-email"
        assert time.monotonic() - started < 2.5  # one attempt alone would take 3 s
        assert app.extensions["background"].join(60)
    finally:
        app.extensions["mailer"] = saved
        silent.close()
    assert mailbox.messages == []
    # The page after it works too: the failure stayed in the background.
    assert auth.login().status_code == 302


def test_log_mode_writes_the_message_and_its_text_as_a_json_log_line(app, ctx, caplog):
    from saas.logs import JsonFormatter

    saved = app.extensions["mailer"]
    app.extensions["mailer"] = mail.build({"MAIL_URL": "log://", "MAIL_FROM": "r@x.com"})
    try:
        with caplog.at_level(logging.INFO, logger="saas.mail"):
            assert mail.deliver("dev@example.com", "Verify your email address", "Open http://localhost/x") is True
    finally:
        app.extensions["mailer"] = saved
    [record] = [r for r in caplog.records if r.name == "saas.mail"]
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info"
    assert "dev@example.com" in line["msg"] and "Verify your email address" in line["msg"]
    assert "Open http://localhost/x" in line["msg"]


def test_an_email_sent_by_a_command_without_redis_is_sent_before_send_mail_returns(app, ctx, mailbox):
    # No request and no Redis (a CLI command, a job of the background thread): the process may end right after.
    mail.send_mail("someone@example.com", "Sent now", "body")
    assert [m["Subject"] for m in mailbox.to("someone@example.com")] == ["Sent now"]

