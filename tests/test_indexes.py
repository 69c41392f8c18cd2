"""Every hot query of the send path and the listings can be served by an index (PostgreSQL EXPLAIN)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from saas.extensions import db

HOT_QUERIES = {
    "api key by hash": "SELECT * FROM api_keys WHERE secret_hash = 'x'",
    "number by Meta id": "SELECT * FROM phone_numbers WHERE tenant_id = 1 AND phone_number_id = '1'",
    "latest window": ("SELECT * FROM conversations WHERE tenant_id = 1 AND contact = '1' AND category = 'service' "
                      "ORDER BY seq DESC LIMIT 1"),
    "message by idempotency key": "SELECT * FROM messages WHERE tenant_id = 1 AND idempotency_key = 'k'",
    "message by wamid": "SELECT * FROM messages WHERE tenant_id = 1 AND wa_message_id = 'wamid.x'",
    "messages page": "SELECT * FROM messages WHERE tenant_id = 1 AND id < 100 ORDER BY id DESC LIMIT 26",
    "period counters": ("SELECT * FROM usage_counters WHERE tenant_id = 1 "
                        "AND period_start = '2026-11-01' AND metric = 'messages'"),
    "subscription of tenant": "SELECT * FROM subscriptions WHERE tenant_id = 1",
    "unreported usage": "SELECT * FROM usage_records WHERE reported_at IS NULL AND voided_at IS NULL LIMIT 100",
    "customer-service window": ("SELECT expires_at FROM service_windows WHERE tenant_id = 1 AND phone_number_id = 1 "
                                "AND contact = '16505551234'"),
    "unapplied notifications": ("SELECT id FROM whatsapp_notifications WHERE processed_at IS NULL "
                                "AND received_at <= now() ORDER BY received_at LIMIT 500"),
    "applied notifications to prune": "SELECT id FROM whatsapp_notifications WHERE processed_at < now() LIMIT 5000",
    "kept items due again": ("SELECT id FROM whatsapp_unapplied_items WHERE applied_at IS NULL "
                             "AND next_try_at <= now() ORDER BY next_try_at LIMIT 100"),
    "kept items listed": ("SELECT * FROM whatsapp_unapplied_items WHERE applied_at IS NULL "
                          "ORDER BY failed_at DESC, id DESC LIMIT 50"),
    "applied kept items to prune": "SELECT id FROM whatsapp_unapplied_items WHERE applied_at < now() LIMIT 5000",
    "due deliveries": ("SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now() "
                       "ORDER BY next_attempt_at LIMIT 16"),
    "earlier event of a message pending": (
        "SELECT 1 FROM webhook_deliveries WHERE tenant_id = 1 AND endpoint_id = 1 AND sequence_key = 'message:x' "
        "AND state = 'pending' AND id < 100"),
    "deliveries page": "SELECT * FROM webhook_deliveries WHERE tenant_id = 1 AND id < 100 ORDER BY id DESC LIMIT 51",
    "domain events of streams": ("SELECT id FROM domain_events WHERE stream IN ('1:contact:1', '1:contact:2') "
                                 "AND dead_at IS NULL ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED"),
    "marketing consent of a recipient": (
        "SELECT contacts.wa_id, consents.state FROM contacts LEFT OUTER JOIN consents "
        "ON consents.contact_id = contacts.id AND consents.tenant_id = contacts.tenant_id "
        "AND consents.phone_number_id = 1 WHERE contacts.tenant_id = 1 AND contacts.wa_id = '16505551234'"),
    "marketing consent of a batch": (
        "SELECT contacts.wa_id, consents.state FROM contacts LEFT OUTER JOIN consents "
        "ON consents.contact_id = contacts.id AND consents.tenant_id = contacts.tenant_id "
        "AND consents.phone_number_id = 1 WHERE contacts.tenant_id = 1 AND contacts.wa_id IN ('1', '2', '3')"),
    "first other event of streams": ("SELECT stream, min(id) FROM domain_events WHERE stream IN ('1:contact:1') "
                                     "AND dead_at IS NULL AND id NOT IN (1, 2) GROUP BY stream"),
    "contacts page": "SELECT * FROM contacts WHERE tenant_id = 1 AND id < 100 ORDER BY id DESC LIMIT 51",
    "contact by number": "SELECT * FROM contacts WHERE tenant_id = 1 AND wa_id = '905321234567'",
    "contacts with a label": ("SELECT * FROM contacts c WHERE c.tenant_id = 1 AND EXISTS (SELECT 1 FROM "
                              "contact_labels l WHERE l.tenant_id = 1 AND l.contact_id = c.id AND l.label = 'vip') "
                              "ORDER BY c.id DESC LIMIT 51"),
    "labels of a page of contacts": "SELECT label FROM contact_labels WHERE tenant_id = 1 AND contact_id IN (1, 2, 3)",
    "a contact's history": "SELECT * FROM contact_events WHERE contact_id = 1 ORDER BY id DESC LIMIT 100",
    "an import's refused rows": ("SELECT * FROM contact_import_errors WHERE import_id = 1 AND row_number > 0 "
                                 "ORDER BY row_number LIMIT 1000"),
    "stalled imports": ("SELECT id FROM contact_imports WHERE status = 'running' AND lease_until < now() "
                        "LIMIT 20"),
    # The broadcast engine's.
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
    # Orders'.
    "order by reference": "SELECT * FROM orders WHERE tenant_id = 1 AND reference = '1001' FOR UPDATE",
    "orders page": "SELECT * FROM orders WHERE tenant_id = 1 AND id < 100 ORDER BY id DESC LIMIT 26",
    "states an order reached": "SELECT state FROM order_events WHERE tenant_id = 1 AND order_id = 1",
    "an order's notifications": "SELECT * FROM order_notifications WHERE tenant_id = 1 AND order_id = 1",
    "notifications a crash left": ("SELECT id, tenant_id FROM order_notifications WHERE status IN ('pending', "
                                   "'sending') AND created_at < now() ORDER BY created_at LIMIT 100"),
    "an event's template": "SELECT * FROM order_notification_mappings WHERE tenant_id = 1 AND event = 'paid'",
    "a shop webhook's connection": "SELECT * FROM shop_connections WHERE token = 'x'",
    "message a dead worker wrote": ("SELECT id FROM messages WHERE tenant_id = 1 AND phone_number_id = 1 "
                                    "AND wa_id = '905320000000' AND direction = 'out' AND created_at >= now() "
                                    "ORDER BY id LIMIT 1"),
    # Meta's costs (saas.costs): a delivered batch's estimates and confirmations, the daily reconciliation.
    "costs of a batch": ("SELECT tenant_id, message_id FROM message_costs WHERE tenant_id IN (1, 2) "
                         "AND message_id IN (1, 2, 3)"),
    "rates of a batch": "SELECT * FROM rates WHERE (card_id, market) IN ((1, 'Argentina'), (1, 'Other'))",
    "volume tiers of a batch": ("SELECT * FROM pricing_tiers WHERE tenant_id IN (1, 2) "
                                "AND effective_month IN ('2025-09')"),
    "a day's billable counts": ("SELECT tenant_id, category, count(*) FROM message_costs WHERE sent_at >= '2025-09-01' "
                                "AND sent_at < '2025-09-02' AND estimated_billable GROUP BY tenant_id, category"),
    # The analytics (saas.analytics): a delivered batch's shares, a tenant's range, every tenant's range.
    "shares of a batch": ("SELECT * FROM analytics_counted WHERE tenant_id IN (1, 2) "
                          "AND message_id = ANY(ARRAY[1, 2, 3]::bigint[])"),
    "a tenant's days": ("SELECT day, phone_number_id, sum(sent) FROM analytics_daily WHERE tenant_id = 1 "
                        "AND day >= '2025-09-01' AND day <= '2025-09-30' GROUP BY day, phone_number_id"),
    "a tenant's failures": ("SELECT error_code, sum(failed) FROM analytics_daily_failures WHERE tenant_id = 1 "
                            "AND day >= '2025-09-01' AND day <= '2025-09-30' GROUP BY error_code"),
    "every tenant's days": ("SELECT tenant_id, sum(sent) FROM analytics_daily WHERE day >= '2025-09-01' "
                            "AND day <= '2025-09-30' GROUP BY tenant_id"),
    "a rebuild's days": "DELETE FROM analytics_counted WHERE day >= '2025-09-01'",
    # Automation's replies (saas.automation.sending): the claims, and the claims a stopped process left.
    "automation replies claimed": ("SELECT id FROM automation_runs WHERE status = 'pending' AND id IN (1, 2, 3) "
                                   "ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED"),
    "oldest automation replies claimed": ("SELECT id FROM automation_runs WHERE status = 'pending' "
                                          "ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED"),
    "automation claims left": ("SELECT id FROM automation_runs WHERE status = 'sending' AND claimed_at < now() "
                               "ORDER BY claimed_at LIMIT 200 FOR UPDATE SKIP LOCKED"),
    # Exports (saas.exports): a tenant's rows over a time range, in time order.
    "messages export": ("SELECT m.id, p.display_number, c.estimated_micros FROM messages m JOIN phone_numbers p "
                        "ON p.id = m.phone_number_id LEFT OUTER JOIN message_costs c ON c.tenant_id = m.tenant_id "
                        "AND c.message_id = m.id WHERE m.tenant_id = 1 AND m.created_at >= '2026-11-01' "
                        "AND m.created_at < '2026-12-01' ORDER BY m.created_at, m.id"),
    "usage records export": ("SELECT * FROM usage_records WHERE tenant_id = 1 AND voided_at IS NULL "
                             "AND created_at >= '2026-11-01' AND created_at < '2026-12-01' ORDER BY created_at, id"),
    "orders export": ("SELECT * FROM orders WHERE tenant_id = 1 AND created_at >= '2026-11-01' "
                      "AND created_at < '2026-12-01' ORDER BY created_at, id"),
}


@pytest.mark.parametrize("name", list(HOT_QUERIES))
def test_hot_query_uses_an_index(backend, app, name):
    if backend != "postgresql":
        pytest.skip("plans are checked on PostgreSQL, the production database")
    with app.app_context():
        with db.engine.connect() as conn:
            # Tables are tiny here; forbidding sequential scans shows whether an index exists to use.
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + HOT_QUERIES[name])))
    assert "Seq Scan" not in plan, plan
