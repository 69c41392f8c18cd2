"""``export``: a 1,000,000-row CSV export streamed by the app as the Procfile serves it, in flat memory.

The main bench tenant (the enterprise plan, which has ``analytics_export``) is given ROWS messages in bulk
(``generate_series``, each outbound one with its Meta cost), spread over the last ten days; the tables are
ANALYZEd (autovacuum may be off). The app is served by the Procfile's web command; a small export warms a
worker, then ``GET /api/v1/exports/messages`` over the whole range is downloaded by a streaming client while
every gunicorn worker's resident memory is read from /proc every 50 ms. Target: the worker serving it grows
by under 50 MB from before the download to its peak.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import requests

ROWS = 1_000_000
LABEL = "messages export, 1,000,000 rows"
OWNER = "main@bench.example.com"
TARGET_MB = 50


def load_messages(url: str, email: str, count: int = ROWS) -> int:
    """``count`` messages (half outbound with a cost) for the tenant of ``email``, over the last ten days."""
    with psycopg.connect(url, autocommit=True) as conn:
        tenant_id, number_pk = conn.execute(
            "SELECT u.tenant_id, p.id FROM users u JOIN phone_numbers p ON p.tenant_id = u.tenant_id "
            "WHERE u.email = %s ORDER BY p.id LIMIT 1", (email,)).fetchone()
        conn.execute("""
            INSERT INTO messages (tenant_id, phone_number_id, direction, wa_id, type, body_summary, status,
                                  category, pricing_category, pricing_type, opened_conversation,
                                  business_initiated, error_code, error_title, created_at, updated_at)
            SELECT %(t)s, %(n)s, CASE WHEN g %% 2 = 0 THEN 'out' ELSE 'in' END, '90532' || lpad((g %% 100000)::text, 7, '0'),
                   'template', 'Order ' || g || ' shipped',
                   CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'delivered' END, 'marketing', 'marketing', 'regular',
                   false, g %% 2 = 0, CASE WHEN g %% 50 = 0 THEN 131026 END,
                   CASE WHEN g %% 50 = 0 THEN '=Message undeliverable' END,
                   now() at time zone 'utc' - (g * interval '864 milliseconds'),
                   now() at time zone 'utc' - (g * interval '864 milliseconds')
              FROM generate_series(1, %(count)s) AS g""", {"t": tenant_id, "n": number_pk, "count": count})
        conn.execute("""
            INSERT INTO message_costs (tenant_id, message_id, sent_at, market, category, context, currency, tier,
                                       estimated_billable, estimated_micros, estimated_at, confirmed_billable,
                                       confirmed_micros, confirmed_at, difference_micros)
            SELECT tenant_id, id, created_at, 'Turkey', 'marketing', 'outside_window', 'USD', '', true, 10900,
                   created_at, true, 10900, created_at, 0
              FROM messages WHERE tenant_id = %(t)s AND direction = 'out'
            ON CONFLICT DO NOTHING""", {"t": tenant_id})
        conn.execute("ANALYZE messages")
        conn.execute("ANALYZE message_costs")
    return tenant_id


def rss_mb(pid: int) -> float | None:
    """A process's resident set (VmRSS) in MB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def workers(master: int) -> list[int]:
    """The gunicorn master's worker processes."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


class Sampler(threading.Thread):
    """Each worker's peak RSS while running."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.peaks, self.samples = pids, {pid: 0.0 for pid in pids}, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in self.pids:
                self.peaks[pid] = max(self.peaks[pid], rss_mb(pid) or 0.0)
            self.samples += 1
            self.done.wait(0.05)


def download(base: str, key: str, query: dict) -> tuple[int, int, float]:
    """The export streamed to nowhere: (rows, bytes, seconds)."""
    started, size, lines = time.monotonic(), 0, 0
    with requests.get(f"{base}/api/v1/exports/messages", params=query, stream=True, timeout=600,
                      headers={"Authorization": f"Bearer {key}"}) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"export answered {answer.status_code}: {answer.text[:300]}")
        for chunk in answer.iter_content(chunk_size=65536):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return lines - 1, size, time.monotonic() - started


def run(bench) -> None:
    started = time.monotonic()
    load_messages(bench.url, OWNER)
    print(f"export: {ROWS} messages loaded in {time.monotonic() - started:.1f} s", flush=True)
    proc, port = bench.serve("export", bench.web_command, bench.app_dir, {"SANDBOX_LATENCY_MS": "0"})
    try:
        base, key = f"http://127.0.0.1:{port}", bench.main[0]
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        pids = workers(proc.pid)
        for _ in pids:  # each worker has answered an export before the baseline is read
            download(base, key, {"from": (now - timedelta(minutes=10)).isoformat() + "Z"})
        before = {pid: rss_mb(pid) or 0.0 for pid in pids}
        sampler = Sampler(pids)
        sampler.start()
        rows, size, seconds = download(base, key, {"from": (now - timedelta(days=11)).date().isoformat()})
        sampler.done.set()
        sampler.join()
        growth = {pid: sampler.peaks[pid] - before[pid] for pid in pids}
        serving = max(growth, key=growth.get)
        bench.export = {"rows": rows, "mb": size / 1e6, "seconds": seconds, "growth": growth[serving],
                        "before": before[serving], "peak": sampler.peaks[serving], "samples": sampler.samples}
        print(f"  {LABEL}: {rows} rows, {size / 1e6:.1f} MB in {seconds:.1f} s ({rows / seconds:,.0f} rows/s); "
              f"worker RSS {before[serving]:.1f} -> peak {sampler.peaks[serving]:.1f} MB "
              f"(+{growth[serving]:.1f} MB, {sampler.samples} samples)", flush=True)
    finally:
        bench.procs.stop(proc)


def targets(bench) -> list[tuple[str, str]]:
    result = getattr(bench, "export", None)
    if result is None:
        return [("SKIP", f"{LABEL} streams with the worker's RSS growing < {TARGET_MB} MB (not measured)")]
    ok = result["rows"] == ROWS and result["growth"] < TARGET_MB
    return [("PASS" if ok else "FAIL",
             f"{LABEL} streams with the worker's RSS growing < {TARGET_MB} MB (got +{result['growth']:.1f} MB: "
             f"{result['before']:.1f} -> {result['peak']:.1f} MB; {result['rows']} rows, {result['mb']:.0f} MB "
             f"in {result['seconds']:.1f} s)")]
