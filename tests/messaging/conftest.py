"""Fixtures for messaging: a Pro tenant with a live number, live sends against the loopback Graph, and the
pair rate switched on."""
from __future__ import annotations

import pytest

from saas.messaging.outbound import send_service
from tests.factories import sender
from tests.messaging.live import live_number_with


@pytest.fixture
def acme(client):
    """A tenant on Pro, sending through our API (tests.factories.Sender)."""
    return sender(client, "pro")


@pytest.fixture
def number(app, graph, acme):
    """acme's live number (phone_number_id, pk, waba_id, token), with the window of CONTACT
    (tests.messaging.live) open."""
    return live_number_with(app, graph, acme.tenant_id)


@pytest.fixture
def live(app, graph):
    """Live numbers send through the app's own Cloud API transport to the loopback Graph API; yields the fake."""
    yield graph


@pytest.fixture
def pair_rate(app):
    """The pair rate as production has it (5 at once, then one per 6 s), in the app's rate-limit store."""
    from saas.extensions import limiter
    from saas.messaging.outbound.rules import PairRate

    rules = send_service(app).rules
    saved = rules.pair_rate
    rules.pair_rate = PairRate(limiter.storage, burst=5, seconds=6.0)
    yield rules.pair_rate
    rules.pair_rate = saved
