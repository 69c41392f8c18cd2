"""The ``live`` workload of bench/run.py: sends from a live number to a Graph API that answers after 200 ms.

One server (the Procfile's web command, WHATSAPP_GRAPH_URL pointing at
bench/graph_server.py on loopback) takes, at 256 connections, first the
sandbox's new sends (bench/new.lua), then a live number's (bench/live.lua:
every send to a new contact whose customer-service window is open). Reported:
live / sandbox req/s, 5xx, p50/p99; the fake's count of sends received and
answered against the messages the app recorded; the longest transaction and
most connections PostgreSQL saw during the live run (sampled every 50 ms); and
any pool exhaustion in the server's log.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

BENCH_DIR = Path(__file__).resolve().parent

CONNECTIONS = 256
GRAPH_DELAY_MS = 200
SANDBOX_LABEL = "app new, sandbox number"
LIVE_LABEL = f"app new, live number (Graph {GRAPH_DELAY_MS} ms)"
# What a send holding a connection across the upstream call would look like: pool exhaustion.
POOL_ERRORS = re.compile(r"QueuePool limit|TimeoutError|too many clients|remaining connection slots")

CREATE_NUMBER = """
import sys
from saas import create_app
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from saas.crypto import encrypt_token

tenant_id, phone_number_id, waba_id, token = sys.argv[1:]
app = create_app()
with app.app_context():
    db.session.add(PhoneNumber(
        tenant_id=int(tenant_id), phone_number_id=phone_number_id, waba_id=waba_id, display_number="+1 555-020-0001",
        verified_name="Bench Live", mode="live", access_token_encrypted=encrypt_token(token),
        token_last4=token[-4:], messaging_limit_tier="TIER_UNLIMITED"))
    db.session.commit()
"""

OPEN_WINDOWS = """
INSERT INTO service_windows (tenant_id, phone_number_id, contact, opened_at, last_inbound_at, expires_at)
SELECT %(tenant_id)s, %(number_pk)s, '48' || lpad(%(run_id)s::text, 3, '0') || t::text || lpad(n::text, 7, '0'),
       now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', (now() AT TIME ZONE 'utc') + interval '24 hours'
FROM generate_series(0, %(threads)s - 1) AS t, generate_series(0, %(contacts)s - 1) AS n
ON CONFLICT DO NOTHING
"""


def create_live_number(bench, owner_email: str) -> tuple[str, str]:
    """A live number (TIER_UNLIMITED) for the tenant of ``owner_email``, its token encrypted by the app.

    Returns (phone_number_id, token).
    """
    with psycopg.connect(bench.url, autocommit=True) as conn:
        tenant_id = conn.execute("SELECT tenant_id FROM users WHERE email = %s", (owner_email,)).fetchone()[0]
    phone_number_id = "1" + "".join(secrets.choice("0123456789") for _ in range(14))
    waba_id = "2" + "".join(secrets.choice("0123456789") for _ in range(14))
    token = "EAAGbench" + secrets.token_urlsafe(24)
    done = subprocess.run([str(bench.bin / "python"), "-c", CREATE_NUMBER, str(tenant_id), phone_number_id, waba_id,
                           token], cwd=bench.app_dir, env=bench.env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"creating the live number failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return phone_number_id, token


class GraphFake:
    """bench/graph_server.py in its own process."""

    def __init__(self, bench, token: str, delay_ms: int = GRAPH_DELAY_MS):
        self.bench = bench
        self.log = bench.logs / "graph-fake.log"
        with open(self.log, "ab") as log:
            self.proc = bench.procs.start([str(bench.bin / "python"), str(BENCH_DIR / "graph_server.py"),
                                           "--port", "0", "--delay-ms", str(delay_ms), "--token", token],
                                          stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"^GRAPH_FAKE_PORT (\d+)$", self.log.read_text(), re.M)
            if found:
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the Graph fake did not start:\n{self.log.read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self, what: str = "stats") -> dict:
        """GET /_bench/<what>: its counts (``stats``) or when each recipient's first send arrived (``arrivals``)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", f"/_bench/{what}")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.bench.procs.stop(self.proc)


class ActivitySampler:
    """PostgreSQL's view of the app while it runs: most backends, most busy, and the longest transaction."""

    def __init__(self, url: str, dbname: str, every: float = 0.05):
        self.url, self.dbname, self.every = url, dbname, every
        self.max_backends = self.max_in_transaction = self.max_idle_in_transaction = 0
        self.longest_ms = 0.0
        self.longest_query = ""
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.every):
                rows = conn.execute(
                    "SELECT state, extract(epoch FROM clock_timestamp() - xact_start) * 1000, query "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'", (self.dbname,)).fetchall()
                self.samples += 1
                self.max_backends = max(self.max_backends, len(rows))
                self.max_in_transaction = max(self.max_in_transaction, sum(age is not None for _, age, _ in rows))
                self.max_idle_in_transaction = max(self.max_idle_in_transaction,
                                                   sum(state == "idle in transaction" for state, _, _ in rows))
                for state, age, query in rows:
                    if age is not None and float(age) > self.longest_ms:
                        self.longest_ms, self.longest_query = float(age), f"{state}: {' '.join(query.split())[:120]}"

    def summary(self) -> str:
        return (f"at most {self.max_backends} connections to PostgreSQL, {self.max_in_transaction} in a transaction "
                f"at once ({self.max_idle_in_transaction} of them idle in it), the longest transaction seen "
                f"{self.longest_ms:.0f} ms ({self.longest_query or 'none'}; {self.samples} samples every "
                f"{self.every * 1000:.0f} ms)")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of the live processes in process group ``pgid``: a server's master and workers."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def last_message_id(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]


def wait_walked(url: str, after_id: int, limit: float = 60.0) -> float | None:
    """Seconds until no sandbox message written after ``after_id`` is left to walk (its follow-ups done);
    None: not within ``limit``. (Those of an earlier phase's server may have died with it.)"""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < limit:
            left = conn.execute("SELECT count(*) FROM messages m JOIN phone_numbers p ON p.id = m.phone_number_id "
                                "WHERE p.mode = 'sandbox' AND m.id > %s AND m.status IN ('pending', 'accepted')",
                                (after_id,)).fetchone()[0]
            if left == 0:
                return time.monotonic() - started
            time.sleep(0.2)
    return None


def wait_settled(url: str, phone_number_id: str, limit: float = 60.0) -> None:
    """Until no send of the live number is pending (answered by the Graph fake but not yet written back)."""
    deadline = time.monotonic() + limit
    while recorded(url, phone_number_id).get("pending") and time.monotonic() < deadline:
        time.sleep(0.2)


def recorded(url: str, phone_number_id: str) -> dict:
    """The live number's outbound messages by status."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT m.status, count(*) FROM messages m JOIN phone_numbers p ON p.id = m.phone_number_id "
            "WHERE p.phone_number_id = %s AND m.direction = 'out' GROUP BY m.status", (phone_number_id,)).fetchall()
    return dict(rows)


class LivePhase:
    """The live phase of run_app: a Graph fake for its server; sandbox new, then live, at CONNECTIONS."""

    name = "app-live"

    def __init__(self, bench):
        self.bench = bench
        key, self.phone_number_id = bench.live
        self.senders = [(key, self.phone_number_id)]
        with psycopg.connect(bench.url, autocommit=True) as conn:
            self.number_pk, self.tenant_id = conn.execute(
                "SELECT id, tenant_id FROM phone_numbers WHERE phone_number_id = %s", (self.phone_number_id,)).fetchone()
        # Enough windows that no thread runs out at ~1,000 sends a second (one that does starts over).
        self.contacts = max(1000, int(bench.args.seconds * 1000))
        self.fake = None
        self.result = None

    def env(self) -> dict:
        """The server's settings: starts the Graph fake it sends to."""
        self.fake = GraphFake(self.bench, self.bench.live_token)
        print(f"live: WHATSAPP_GRAPH_URL={self.fake.url}, answering after {GRAPH_DELAY_MS} ms", flush=True)
        return {"SANDBOX_LATENCY_MS": "0", "WHATSAPP_GRAPH_URL": self.fake.url}

    def live_wrk(self, connections: int, run):
        """Open the windows of the contacts the next wrk run writes to, then ``run()`` it."""
        bench = self.bench
        run_id = (bench.run_counter + 1) % 1000  # the BENCH_RUN wrk() is about to give
        with psycopg.connect(bench.url, autocommit=True) as conn:
            conn.execute(OPEN_WINDOWS, {"tenant_id": self.tenant_id, "number_pk": self.number_pk, "run_id": run_id,
                                        "threads": min(connections, 2), "contacts": self.contacts})
        bench.env["BENCH_CONTACTS"] = str(self.contacts)
        try:
            return run()
        finally:
            bench.env.pop("BENCH_CONTACTS", None)

    def work(self, port: int) -> None:
        bench, fake, senders = self.bench, self.fake, self.senders
        self.live_wrk(4, lambda: bench.wrk(port, "live", 4, senders, seconds=2))  # warm up
        # CPU per send is per send the server completed (a message row), answered in time for wrk or not.
        pgid, seconds = bench.serving.pid, bench.args.seconds
        cpu, sent = group_cpu_seconds(pgid), sum(recorded(bench.url, bench.main[1]).values())
        after_id = last_message_id(bench.url)
        sandbox = bench.measure(SANDBOX_LABEL, port, "new", CONNECTIONS, [bench.main])
        # The sandbox's delivery receipts run after its responses: finished before the live run, and counted
        # in the sandbox's CPU per send.
        walked = wait_walked(bench.url, after_id)
        sent = sum(recorded(bench.url, bench.main[1]).values()) - sent
        sandbox.update(server_cpu_ms=1000 * (group_cpu_seconds(pgid) - cpu) / max(sent, 1), walked_s=walked,
                       completed_per_s=sent / seconds)
        cpu = group_cpu_seconds(pgid)
        before_stats, before_cpu, load = fake.stats(), fake.cpu_seconds(), os.getloadavg()[0]
        before_rows = recorded(bench.url, self.phone_number_id)
        with ActivitySampler(bench.url, conninfo_to_dict(bench.url)["dbname"]) as sampler:
            result = self.live_wrk(CONNECTIONS,
                                   lambda: bench.measure(LIVE_LABEL, port, "live", CONNECTIONS, senders))
        wait_settled(bench.url, self.phone_number_id)
        cpu = group_cpu_seconds(pgid) - cpu
        after_stats, after_cpu = fake.stats(), fake.cpu_seconds()
        after_rows = recorded(bench.url, self.phone_number_id)
        delta = {k: after_stats[k] - before_stats[k] for k in ("received", "answered", "refused")}
        rows = {status: after_rows.get(status, 0) - before_rows.get(status, 0)
                for status in set(after_rows) | set(before_rows)}
        sent = sum(rows.values())
        result.update(server_cpu_ms=1000 * cpu / max(sent, 1), completed_per_s=sent / seconds, load=(load, os.getloadavg()[0]), pool=sampler.summary(), rows=rows,
                      fake={**delta, "cpu_s": after_cpu - before_cpu, "max_open": after_stats["max_open"]})
        self.result = result

    def finish(self) -> None:
        """After the server stopped: the checks, from the counts and the server's log."""
        if self.fake is not None:
            self.fake.stop()
        result, bench = self.result, self.bench
        if result is None:
            return
        delta, rows = result["fake"], result["rows"]
        ok_200 = result["statuses"].get(200, 0)
        log_text = (bench.logs / f"{self.name}.log").read_text(errors="replace")
        pool_errors = [line for line in log_text.splitlines() if POOL_ERRORS.search(line)]
        result["pool_errors"] = len(pool_errors)
        # urllib3 pools this many connections per host; a send past them opens (and closes) its own.
        discarded = log_text.count("Connection pool is full, discarding connection")
        # Every send the fake answered is an accepted message; none left pending or failed; wrk saw every 200
        # but those in flight when it stopped (at most one per connection).
        result["exact"] = exact = (
            ok_200 > 0 and delta["received"] == delta["answered"] and delta["refused"] == 0
            and rows.get("accepted", 0) == delta["answered"] and not rows.get("pending") and not rows.get("failed")
            and 0 <= delta["answered"] - ok_200 <= CONNECTIONS)
        bench.notes["live_check"] = (
            f"{'PASS' if exact else 'FAIL'}: the Graph fake received {delta['received']} sends and answered "
            f"{delta['answered']} with 200 ({delta['refused']} refused); the app recorded "
            f"{', '.join(f'{n} {s}' for s, n in sorted(rows.items())) or 'no messages'}; wrk counted {ok_200} "
            f"200s (the rest in flight when it stopped). The fake used {delta['cpu_s']:.1f} CPU s "
            f"({1000 * delta['cpu_s'] / max(delta['received'], 1):.2f} ms a send), "
            f"{delta['max_open']} connections at most")
        bench.notes["live_pool"] = (f"{result['pool']}; server log: {len(pool_errors)} database pool exhaustion "
                                    "lines" + (f" (first: {pool_errors[0][:200]})" if pool_errors else "")
                                    + f", {discarded} Graph connections discarded by a full urllib3 pool")
        print(f"live check: {bench.notes['live_check']}\nlive pool: {bench.notes['live_pool']}", flush=True)


def report_lines(bench) -> list[str]:
    live, sandbox = bench.get(LIVE_LABEL, CONNECTIONS), bench.get(SANDBOX_LABEL, CONNECTIONS)
    if not (live and sandbox):
        return []
    ratio = bench.ratio(live, sandbox)
    return [
        f"- Live (Graph answering after {GRAPH_DELAY_MS} ms) / sandbox, new sends at {CONNECTIONS}, one server: "
        f"{ratio:.2f} ({live['rps']:.1f} / {sandbox['rps']:.1f} req/s); 5xx live {live['5xx']}, sandbox "
        f"{sandbox['5xx']}; p50/p99 live {live['p50'] or 0:.0f}/{live['p99'] or 0:.0f} ms, sandbox "
        f"{sandbox['p50'] or 0:.0f}/{sandbox['p99'] or 0:.0f} ms (machine load average {live['load'][0]:.1f} "
        f"before the live run, {live['load'][1]:.1f} after)",
        f"- Sends completed by the server (message rows written, answered in time for wrk or not) per second: "
        f"live {live.get('completed_per_s', 0):.1f}, sandbox {sandbox.get('completed_per_s', 0):.1f} "
        f"(= {live.get('completed_per_s', 0) / max(sandbox.get('completed_per_s', 0), 1e-9):.2f}); wrk counts only "
        f"answers within its run, so up to {CONNECTIONS} sends in flight at its end count for neither",
        f"- Server CPU per completed send (gunicorn master and workers; PostgreSQL not counted): live "
        f"{live.get('server_cpu_ms', 0):.1f} ms, sandbox {sandbox.get('server_cpu_ms', 0):.1f} ms (with its delivery "
        "receipts, " + (f"done {sandbox['walked_s']:.1f} s after its run" if sandbox.get("walked_s") is not None
                         else "NOT done within 60 s of its run") + ")",
        f"- Live check: {bench.notes.get('live_check', 'n/a')}",
        f"- Live pool: {bench.notes.get('live_pool', 'n/a')}",
    ]


def targets(bench) -> list[tuple[str, str]]:
    live, sandbox = bench.get(LIVE_LABEL, CONNECTIONS), bench.get(SANDBOX_LABEL, CONNECTIONS)
    text = (f"live sends (Graph {GRAPH_DELAY_MS} ms) at {CONNECTIONS} >= 0.8x sandbox new sends, no 5xx, "
            "no pool exhaustion, every answered send recorded")
    if not (live and sandbox):
        return [("SKIP", f"{text} (not measured)")]
    ratio = bench.ratio(live, sandbox)
    ok = ratio >= 0.8 and live["5xx"] == 0 and live.get("pool_errors") == 0 and live.get("exact")
    return [("PASS" if ok else "FAIL", f"{text} (got {ratio:.2f}x, {live['5xx']} 5xx, {live.get('pool_errors', 'n/a')} "
                                       f"pool errors, check {'passed' if live.get('exact') else 'failed'})")]
