"""Outbound: the send service (send, send_many), WhatsApp's rules, windows, transports, accepts, settling.

``send_service(app)`` is the app's SendService, built by the factory
(saas.register_send_service): the one way a message leaves, for the API, the
CLI, workers and scheduled jobs alike.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from saas.messaging.outbound.send import SendService

_SEND_SERVICE = "saas.messaging.outbound.send_service"


def send_service(app) -> SendService:
    """The send service the factory built for ``app``."""
    return app.extensions[_SEND_SERVICE]


def install(app, service: SendService) -> None:
    """Make ``service`` the one ``send_service(app)`` answers (the factory, and tests that replace it)."""
    app.extensions[_SEND_SERVICE] = service
