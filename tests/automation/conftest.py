from __future__ import annotations

import pytest

from tests.inbox.helpers import SECRET


@pytest.fixture
def whatsapp(app, graph):
    """The app with WhatsApp's app secret set and the loopback Graph; yields the fake Graph."""
    saved = app.config.get("WHATSAPP_APP_SECRET")
    app.config["WHATSAPP_APP_SECRET"] = SECRET
    yield graph
    app.config["WHATSAPP_APP_SECRET"] = saved
