"""The ingest workload: WhatsApp's webhook posted with 200 notifications of 100 statuses each for messages
that exist, signed beforehand and cycled by ingest.lua; then every stored notification must be applied."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import psycopg

INGEST_BODIES = 200
STATUSES_PER_BODY = 100
# (label, connections, pause between a connection's requests in ms): as fast as answered at 1 and 16
# connections, and paced at about 40 notifications (4,000 statuses) a second, where applying must keep up.
INGEST_POINTS = (("ingest", 1, 0), ("ingest", 16, 0), ("ingest paced ~40/s", 4, 100))
INGEST_DRAIN_LIMIT_S = 900


def ingest_bodies(bench) -> Path:
    """Messages for the statuses to move, and the signed notifications about them, one a line."""
    _, number = bench.main
    messages = INGEST_BODIES * STATUSES_PER_BODY // 2  # each message gets delivered, then read
    with psycopg.connect(bench.url, autocommit=True) as conn:
        number_pk, tenant_id = conn.execute("SELECT id, tenant_id FROM phone_numbers WHERE phone_number_id = %s",
                                            (number,)).fetchone()
        conn.execute(
            "INSERT INTO messages (tenant_id, phone_number_id, direction, wa_id, type, body_summary, "
            "wa_message_id, status, opened_conversation, created_at, updated_at) "
            "SELECT %s, %s, 'out', '4470000' || lpad(n::text, 5, '0'), 'text', 'bench', "
            "'wamid.bench' || lpad(n::text, 8, '0'), 'accepted', false, now(), now() "
            "FROM generate_series(0, %s - 1) AS n", (tenant_id, number_pk, messages))
    stamp = int(time.time())
    path = bench.logs / "ingest-bodies.tsv"
    with open(path, "w") as out:
        for b in range(INGEST_BODIES):
            statuses = []
            for j in range(STATUSES_PER_BODY // 2):
                m = b * (STATUSES_PER_BODY // 2) + j
                for offset, name in enumerate(("delivered", "read")):
                    statuses.append({
                        "id": f"wamid.bench{m:08d}", "status": name, "timestamp": str(stamp + offset),
                        "recipient_id": f"4470000{m:05d}",
                        "conversation": {"id": f"bench-conversation-{m}", "origin": {"type": "utility"}},
                        "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility",
                                    "type": "regular"}})
            body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
                               "changes": [{"field": "messages", "value": {
                                   "messaging_product": "whatsapp",
                                   "metadata": {"display_phone_number": "15550100000", "phone_number_id": number},
                                   "statuses": statuses}}]}]}, separators=(",", ":"))
            digest = hmac.new(bench.env["WHATSAPP_APP_SECRET"].encode(), body.encode(), hashlib.sha256).hexdigest()
            out.write(f"sha256={digest}\t{body}\n")
    bench.notes["ingest_messages"] = str(messages)
    return path

def run(bench) -> None:
    bodies = ingest_bodies(bench)
    print(f"ingest: {bench.web_command}", flush=True)
    proc, port = bench.serve("app-ingest", bench.web_command, bench.app_dir, {})
    try:
        bench.env["BENCH_BODIES"] = str(bodies)
        bench.wrk(port, "ingest", 2, [("unused", "0")], seconds=2)  # warm up
        drain(bench)
        for label, connections, pause_ms in INGEST_POINTS:
            bench.env["BENCH_DELAY_MS"] = str(pause_ms)
            load = os.getloadavg()[0]
            result = bench.measure(label, port, "ingest", connections, [("unused", "0")])
            result["load"] = (load, os.getloadavg()[0])
            drained = drain(bench)
            result["statuses_per_s"] = result["rps"] * STATUSES_PER_BODY
            result["drain_s"] = drained
            posted = result["requests"] * STATUSES_PER_BODY
            applied_in = bench.args.seconds + (drained or 0)
            print(f"    {result['statuses_per_s']:.0f} statuses/s taken in; every stored notification applied "
                  f"{'after %.1f s more' % drained if drained is not None else 'NOT within the limit'} "
                  f"(~{posted / applied_in:.0f} statuses/s applied)", flush=True)
        check_applied(bench)
    finally:
        bench.procs.stop(proc)
        bench.env.pop("BENCH_BODIES", None)
        bench.env.pop("BENCH_DELAY_MS", None)

def drain(bench) -> float | None:
    """Seconds until no stored notification is left unapplied (None: not within the limit)."""
    started = time.monotonic()
    with psycopg.connect(bench.url, autocommit=True) as conn:
        while time.monotonic() - started < INGEST_DRAIN_LIMIT_S:
            left = conn.execute("SELECT count(*) FROM whatsapp_notifications WHERE processed_at IS NULL"
                                ).fetchone()[0]
            if left == 0:
                return time.monotonic() - started
            time.sleep(0.5)
    return None

def check_applied(bench) -> None:
    """Every bench message delivered and read, with its charge; no notification with an error."""
    with psycopg.connect(bench.url, autocommit=True) as conn:
        total, applied = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'read' AND delivered_at IS NOT NULL "
            "AND read_at IS NOT NULL AND pricing_category = 'utility' AND wa_conversation_id IS NOT NULL) "
            "FROM messages WHERE wa_message_id LIKE 'wamid.bench%'").fetchone()
        stored, unapplied, failed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL), count(*) FILTER (WHERE error IS "
            "NOT NULL) FROM whatsapp_notifications").fetchone()
    ok = total > 0 and applied == total and unapplied == 0 and failed == 0
    bench.notes["ingest_verdict"] = (
        f"{'PASS' if ok else 'FAIL'}: {applied} of {total} messages delivered and read with their pricing; "
        f"{stored} notifications stored, {unapplied} unapplied, {failed} with an error")
    print(f"ingest check: {bench.notes['ingest_verdict']}", flush=True)
