"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the mail tests."""
from __future__ import annotations

import logging
import re
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

logging.getLogger("mail.log").setLevel(logging.WARNING)
LINK = re.compile(r"https?://\S+")


class Sink:
    """Keeps every message; ``fail_next(n)`` answers the next n deliveries with a 451."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.failures = 0
        self.attempts = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.attempts += 1
            if self.failures > 0:
                self.failures -= 1
                return "451 4.3.0 Try again later"
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class Mailbox:
    def __init__(self):
        self.sink = Sink()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def reset(self):
        with self.sink._lock:
            self.sink.messages.clear()
            self.sink.failures = 0
            self.sink.attempts = 0

    def fail_next(self, n: int):
        self.sink.failures = n

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self.sink.messages)

    def to(self, address: str, subject: str | None = None) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address and (subject is None or subject in m["Subject"])]

    @staticmethod
    def text(message: EmailMessage) -> str:
        return message.get_body(("plain",)).get_content()

    def link(self, address: str, subject: str, path_prefix: str) -> str:
        """The path of the last link to ``path_prefix`` emailed to ``address`` under ``subject``."""
        found = self.to(address, subject)
        assert found, f"no email '{subject}' to {address}; got {[(m['To'], m['Subject']) for m in self.messages]}"
        for url in LINK.findall(self.text(found[-1])):
            path = re.sub(r"^https?://[^/]+", "", url)
            if path.startswith(path_prefix):
                return path
        raise AssertionError(f"no {path_prefix} link in: {self.text(found[-1])}")
