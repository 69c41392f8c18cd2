"""The broadcast engine's hot queries can be served by an index (PostgreSQL EXPLAIN), as the send path's are."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from saas.extensions import db

HOT_QUERIES = {
    "claim": ("SELECT * FROM broadcast_recipients WHERE tenant_id = 1 AND broadcast_id = 1 AND status = 'queued' "
              "AND (next_attempt_at IS NULL OR next_attempt_at <= now()) ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED"),
    "counts by status": ("SELECT broadcast_id, status, count(*) FROM broadcast_recipients WHERE tenant_id = 1 "
                         "AND broadcast_id IN (1, 2) GROUP BY broadcast_id, status"),
    "abandoned claims": ("SELECT id FROM broadcast_recipients WHERE status = 'sending' AND claimed_at < now() "
                         "ORDER BY claimed_at LIMIT 500"),
    "recipient of a message": "SELECT id FROM broadcast_recipients WHERE tenant_id = 1 AND message_id = 5",
    "running broadcasts": "SELECT id FROM broadcasts WHERE status = 'running' LIMIT 1000",
    "due broadcasts": "SELECT id FROM broadcasts WHERE status = 'scheduled' AND schedule_at <= now() LIMIT 100",
    "broadcasts page": "SELECT * FROM broadcasts WHERE tenant_id = 1 AND id < 100 ORDER BY id DESC LIMIT 26",
    "consent of a chunk": ("SELECT contact_id, state FROM consents WHERE tenant_id = 1 AND phone_number_id = 1 "
                           "AND contact_id IN (1, 2, 3)"),
    "message a dead worker wrote": ("SELECT id FROM messages WHERE tenant_id = 1 AND phone_number_id = 1 "
                                    "AND wa_id = '905320000000' AND direction = 'out' AND created_at >= now() "
                                    "ORDER BY id LIMIT 1"),
}


@pytest.mark.parametrize("name", list(HOT_QUERIES))
def test_hot_query_uses_an_index(backend, app, name):
    if backend != "postgresql":
        pytest.skip("plans are checked on PostgreSQL, the production database")
    with app.app_context():
        with db.engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + HOT_QUERIES[name])))
    assert "Seq Scan" not in plan, plan
