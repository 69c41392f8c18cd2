"""Live updates: a stream names the threads of its own tenant that changed, and no other tenant's; it beats,
ends on its own, and works with Redis waking it as well as by polling."""
from __future__ import annotations

import json

import pytest

from saas.inbox.live import LiveUpdates
from tests.inbox.helpers import login, make_shop, post_inbound, text, threads_of


def read_stream(response) -> list[str]:
    """Every line of an SSE response, read until the server ends the stream (INBOX_STREAM_SECONDS)."""
    return "".join(chunk.decode() for chunk in response.response).splitlines()


def thread_events(lines) -> list[int]:
    return [json.loads(line[len("data: "):])["thread_id"] for line in lines if line.startswith("data: ")]


@pytest.fixture
def redis_server(tmp_path):
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def live(app):
    """The app's live updates with a stream that lives long enough to see a change (polling every 20 ms)."""
    saved = app.extensions.pop("inbox_live", None)
    app.extensions["inbox_live"] = LiveUpdates(poll_seconds=0.02, heartbeat_seconds=0.1, stream_seconds=1.5)
    yield app.extensions["inbox_live"]
    app.extensions.pop("inbox_live", None)
    if saved is not None:
        app.extensions["inbox_live"] = saved


def test_a_stream_delivers_an_inbound_message_to_its_tenant_only(app, client, whatsapp, live):
    shop, other = make_shop(app, whatsapp), make_shop(app, whatsapp)
    mine, theirs = app.test_client(), app.test_client()
    login(mine, shop.owner_email)
    login(theirs, other.owner_email)
    mine_stream = mine.get("/inbox/stream", buffered=False)
    theirs_stream = theirs.get("/inbox/stream", buffered=False)
    assert mine_stream.mimetype == "text/event-stream"
    first_mine, first_theirs = next(mine_stream.response), next(theirs_stream.response)  # streams open
    post_inbound(app, client, shop, text("hello, anyone?"))
    [thread] = threads_of(app, shop.tenant_id)
    lines = [first_mine.decode()] + read_stream(mine_stream)
    assert thread.id in thread_events(lines)
    assert ": heartbeat" in lines
    theirs_lines = [first_theirs.decode()] + read_stream(theirs_stream)
    assert thread_events(theirs_lines) == []
    rows = mine.get("/inbox/rows").get_data(as_text=True)
    assert "hello, anyone?" in rows and "Sheena Nelson" in rows
    assert theirs.get(f"/inbox/threads/{thread.id}/entries").status_code == 404


def test_with_redis_a_published_change_wakes_the_stream(app, client, whatsapp, live, redis_server):
    from redis import Redis

    live.redis = Redis.from_url(redis_server.url)
    live.poll_seconds = 60  # no polling: only the wake-up can bring the change in time
    shop = make_shop(app, whatsapp)
    login(client, shop.owner_email)
    stream = client.get("/inbox/stream", buffered=False)
    first = next(stream.response)
    post_inbound(app, app.test_client(), shop, text("wake up"))
    [thread] = threads_of(app, shop.tenant_id)
    assert thread.id in thread_events([first.decode()] + read_stream(stream))
