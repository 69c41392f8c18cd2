"""Load benchmark of the send endpoint, served the way the Procfile serves it.

    make bench                                       # everything, about 7 minutes
    .venv/bin/python bench/run.py --seconds 5 --only new forwarder
    .venv/bin/python bench/run.py --app-dir /path/to/checkout --output /tmp/results.md

Prepares its own PostgreSQL database (BENCH_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/relay_bench) with the app's migrations,
seed and CLI, then serves, one at a time, on 127.0.0.1:

  app               the Procfile's web command (gunicorn wsgi:app ...)
  forwarder         bench/forwarder.py under the same command line: auth, JSON, answer
  forwarder-insert  the same plus one INSERT per message

and loads each with wrk (bench/new.lua: a new recipient every send;
bench/chat.lua: 200 recipients round robin) at 1, 16 and 64 connections.
Further app workloads: ten tenants at once, a slow (200 ms) sandbox at 256
connections, and one tenant's sends while 200 slow clients dribble request
bodies (bench/slowloris.py). ``ingest`` posts WhatsApp's webhook: 200
notifications of 100 statuses each for messages that exist, signed here
beforehand and cycled by bench/ingest.lua; it reports statuses/s (requests/s
x 100) and p99, then waits until every stored notification is applied and
checks that every status was. ``live`` serves the app with WHATSAPP_GRAPH_URL
pointing at bench/graph_server.py (WhatsApp's Graph API answering every send
after 200 ms) and sends, at 256 connections on that one server, first from
the sandbox number (new.lua), then from a live number to contacts whose
windows are open (live.lua); see bench/live_sends.py. Then the app's `usage check` command, a table
with PASS/FAIL against the targets, and the same as Markdown in
bench/RESULTS.md. Exits 0 whatever the verdicts; non-zero only if the run
itself broke.

``send-many`` sends batches of 1,000 recipients from a process of its own with the send service's
``send_many`` (bench/send_many.py), before the app's workloads, and reports recipients/s beside the
API's sends/s; ``--before DIR`` serves another checkout's app for its new sends in the same run.

``noisy-neighbour`` serves the app while one tenant on the free plan hammers
past its rate limit and the ten tenants send, and reports their rate with and
without it and the server's CPU per refusal, with refusals paused as configured
and answered at once (bench/noisy_neighbour.py).

Workload names for --only: new chat forwarder forwarder-insert ten-tenants
slow-sandbox slow-clients ingest live noisy-neighbour send-many.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import live_sends
import noisy_neighbour
import send_many
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/relay_bench"
FERNET_KEY = "x9Gj0eKqk0p2M1o5Y2m2f8qVZ0jv3QXb6Zy9yQ1K8fU="
CONNECTIONS = (1, 16, 64)
WORKLOADS = ("new", "chat", "forwarder", "forwarder-insert", "ten-tenants", "slow-sandbox", "slow-clients", "ingest",
             "live", "noisy-neighbour", "send-many")
APP_WORKLOADS = {"new", "chat", "ten-tenants", "slow-sandbox", "slow-clients", "live", "noisy-neighbour"}
WRK_TIMEOUT_S = 10
SLOW_CLIENTS = 200
APP_SECRET = "bench-app-secret"
INGEST_BODIES = 200
STATUSES_PER_BODY = 100
# (label, connections, pause between a connection's requests in ms): as fast as answered at 1 and 16
# connections, and paced at about 40 notifications (4,000 statuses) a second, where applying must keep up.
INGEST_POINTS = (("ingest", 1, 0), ("ingest", 16, 0), ("ingest paced ~40/s", 4, 100))
INGEST_DRAIN_LIMIT_S = 900


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def http_get(port: int, timeout: float) -> None:
    """GET / on 127.0.0.1:port; any answer will do. Raises OSError when there is none."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
    finally:
        conn.close()


def parse_wrk(out: str) -> dict | None:
    """The BENCH_RESULT line printed by common.lua's done(), as figures in ms and req/s."""
    found = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
    if not found:
        return None
    raw = json.loads(found.group(1))
    statuses = {int(code): n for code, n in raw["statuses"].items()}
    errors, answered = raw["errors"], raw["requests"]
    return {
        "rps": answered / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0,
        "requests": answered,
        "p50": raw["p50_us"] / 1000 if answered else None,  # no answer, no latency (wrk would say 0)
        "p99": raw["p99_us"] / 1000 if answered else None,
        "statuses": statuses,
        "non2xx": sum(n for code, n in statuses.items() if not 200 <= code < 300),
        "5xx": sum(n for code, n in statuses.items() if code >= 500),
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "timeouts": errors["timeout"],
    }


class Processes:
    """Every process this run started, each in its own process group, so all can be stopped."""

    def __init__(self):
        self.live: list[subprocess.Popen] = []

    def start(self, argv, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; then whatever of the group is left."""
        if proc in self.live:
            self.live.remove(proc)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, signum)
                proc.wait(grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                continue
            break
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for proc in list(self.live):
            self.stop(proc, grace=3.0)


class Bench:
    def __init__(self, args):
        self.args = args
        self.app_dir = Path(args.app_dir).resolve()
        self.bin = self.app_dir / ".venv" / "bin"
        self.url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
        self.procs = Processes()
        self.logs = Path(tempfile.mkdtemp(prefix="relay-bench-"))
        self.results: dict[tuple[str, int], dict] = {}
        self.notes: dict[str, str] = {}
        self.run_counter = 0
        self.serving: subprocess.Popen | None = None  # the app server the current phase measures
        self.env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        self.env.update(PATH=f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}", DATABASE_URL=self.url,
                        SECRET_KEY="bench", TOKEN_ENCRYPTION_KEY=FERNET_KEY, LOG_LEVEL="WARNING",
                        # The send path is measured, not WhatsApp's pacing of one contact (chat.lua
                        # writes to 200 recipients hundreds of times a second).
                        WHATSAPP_PAIR_RATE_BURST="0", WHATSAPP_APP_SECRET=APP_SECRET)
        procfile = (self.app_dir / "Procfile").read_text()
        web = [line.split(":", 1)[1].strip() for line in procfile.splitlines() if line.startswith("web:")]
        if not web or "wsgi:app" not in web[0]:
            raise SystemExit("Procfile has no web: line serving wsgi:app")
        self.web_command = web[0]

    # -- setup -------------------------------------------------------------------------------
    def flask(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "flask"), "--app", "wsgi", *argv], cwd=self.app_dir, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def flask_ok(self, *argv: str) -> str:
        done = self.flask(*argv)
        if done.returncode != 0:
            raise RuntimeError(f"flask {' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def prepare_database(self) -> None:
        dbname = conninfo_to_dict(self.url)["dbname"]
        with psycopg.connect(make_conninfo(self.url, dbname="postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
        self.flask_ok("db", "upgrade")
        self.flask_ok("seed")

        def tenant(name: str, plan: str = "enterprise") -> tuple[str, str]:
            email = f"{name}@bench.example.com"
            out = self.flask_ok("tenants", "create", "--name", f"Bench {name}", "--email", email,
                                "--password", "bench password", "--plan", plan)
            number = re.search(r"phone_number_id (\S+)", out).group(1)
            key = self.flask_ok("keys", "create", email).strip().splitlines()[-1].strip()
            return key, number

        names = ["main"] + [f"tenant{i:02d}" for i in range(1, 11)] + ["victim", "live"]
        with ThreadPoolExecutor(4) as pool:
            made = list(pool.map(tenant, names))
        self.main, self.ten, self.victim = made[0], made[1:11], made[11]
        self.hammer = tenant("hammer", plan="free")  # 60 requests a minute: the noisy neighbour
        # The live tenant sends from a live number (its sandbox one is not used).
        number, self.live_token = live_sends.create_live_number(self, "live@bench.example.com")
        self.live = (made[12][0], number)
        self.keys = [key for key, _ in made]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("UPDATE plans SET rate_limit_per_minute = 10000000 WHERE code = 'enterprise'")
            conn.execute("CREATE TABLE forwarder_messages (id bigserial PRIMARY KEY, phone_number_id text NOT NULL,"
                         " recipient text NOT NULL, wamid text NOT NULL, body text NOT NULL,"
                         " created_at timestamptz NOT NULL DEFAULT now())")

    # -- servers -----------------------------------------------------------------------------
    @staticmethod
    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def serve(self, name: str, command: str, cwd: Path, extra_env: dict) -> tuple[subprocess.Popen, int]:
        port = self.free_port()
        command = command.replace("0.0.0.0", "127.0.0.1")  # loopback only
        # gunicorn's control socket defaults to one path for every instance on the machine; give each its own.
        extra_env = {"GUNICORN_CMD_ARGS": f"{self.env.get('GUNICORN_CMD_ARGS', '')} --control-socket "
                                          f"{self.logs / (name + '.ctl')}".strip(), **extra_env}
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = self.procs.start(["bash", "-c", "exec " + command], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    env={**self.env, **extra_env, "PORT": str(port)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) before answering:\n{self.tail(name)}")
            try:
                http_get(port, timeout=2)
                return proc, port
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{name} did not answer within 60 s:\n{self.tail(name)}")

    @staticmethod
    def settle(port: int, limit: float = 30.0) -> None:
        """Wait (up to ``limit`` s) until requests queued by earlier clients are drained: GET / answers fast twice."""
        deadline, fast = time.monotonic() + limit, 0
        while fast < 2 and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                http_get(port, timeout=max(deadline - started, 0.1))
            except OSError:
                time.sleep(0.5)
                continue
            fast = fast + 1 if time.monotonic() - started < 0.25 else 0

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- load --------------------------------------------------------------------------------
    def wrk(self, port: int, mix: str, connections: int, senders, seconds: float | None = None,
            settle: bool = True) -> dict:
        seconds = seconds or self.args.seconds
        self.run_counter += 1
        env = {**self.env, "BENCH_RUN": str(self.run_counter),
               "BENCH_TENANTS": ",".join(f"{key}:{number}" for key, number in senders)}
        argv = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds:g}s",
                "--timeout", f"{WRK_TIMEOUT_S}s", "--latency", "-s", str(BENCH_DIR / f"{mix}.lua"),
                f"http://127.0.0.1:{port}/"]
        proc = self.procs.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            out, err = proc.communicate(timeout=seconds + WRK_TIMEOUT_S + 30)
        finally:
            self.procs.stop(proc, grace=2)
        if settle:
            self.settle(port)
        result = parse_wrk(out)
        if result is None:
            raise RuntimeError(f"wrk printed no result (exit {proc.returncode}):\n{out}{err}")
        return result

    def measure(self, label: str, port: int, mix: str, connections: int, senders, **kw) -> dict:
        result = self.wrk(port, mix, connections, senders, **kw)
        self.results[(label, connections)] = result
        print(f"  {label:34s} c={connections:<4d} {result['rps']:8.1f} req/s  p50 {ms(result['p50']):>8s} ms  "
              f"p99 {ms(result['p99']):>8s} ms  non-2xx {result['non2xx']}  socket errors {result['socket_errors']}"
              f"  statuses {dict(sorted(result['statuses'].items()))}", flush=True)
        return result

    def warm_up(self, port: int, senders) -> None:
        self.wrk(port, "chat", 4, senders, seconds=2)

    # -- phases ------------------------------------------------------------------------------
    def run_forwarder(self, label: str, insert: bool) -> None:
        command = self.web_command.replace("wsgi:app", "forwarder:app")
        extra = {"FORWARDER_KEYS": ",".join(self.keys), "FORWARDER_INSERT": "1" if insert else "0"}
        print(f"{label}: {command}", flush=True)
        proc, port = self.serve(label, command, BENCH_DIR, extra)
        try:
            self.warm_up(port, [self.main])
            for mix in ("new", "chat"):
                for connections in CONNECTIONS:
                    self.measure(f"{label} {mix}", port, mix, connections, [self.main])
        finally:
            self.procs.stop(proc)

    def run_app(self, only: set[str]) -> None:
        """The app's workloads; the two slow-sandbox points each on a fresh server, back to back."""
        def main_workloads(port):
            for mix in ("new", "chat"):
                if mix in only:
                    for connections in CONNECTIONS:
                        self.measure(f"app {mix}", port, mix, connections, [self.main])
            if "ten-tenants" in only:
                self.measure("app ten tenants new", port, "new", 64, self.ten)
            if "slow-clients" in only:
                self.slow_clients(port)

        def sandbox(latency_ms):
            return lambda port: self.measure(f"app chat, sandbox {latency_ms} ms", port, "chat", 256, [self.main])

        def latency(ms):
            return lambda: {"SANDBOX_LATENCY_MS": ms}

        phases = []
        if only & {"new", "chat", "ten-tenants", "slow-clients"}:
            phases.append(("app", latency("0"), main_workloads))
        if "slow-sandbox" in only:
            phases += [("app-sandbox-0ms", latency("0"), sandbox(0)),
                       ("app-sandbox-200ms", latency("200"), sandbox(200))]
        live = live_sends.LivePhase(self) if "live" in only else None
        if live is not None:
            phases.append((live.name, live.env, live.work))
        if "noisy-neighbour" in only:
            for pause in noisy_neighbour.PAUSES:
                noisy = noisy_neighbour.NoisyNeighbourPhase(self, parse_wrk, pause)
                phases.append((noisy.name, noisy.env, noisy.work))
        print(f"app: {self.web_command}", flush=True)
        try:
            for i, (name, env, work) in enumerate(phases):
                proc, port = self.serve(name, self.web_command, self.app_dir, env())
                self.serving = proc
                try:
                    self.warm_up(port, [self.main])
                    work(port)
                    if i == len(phases) - 1:
                        self.usage_check()
                finally:
                    self.procs.stop(proc)
        finally:
            if live is not None:
                live.finish()

    # -- WhatsApp's webhook ---------------------------------------------------------------------
    def ingest_bodies(self) -> Path:
        """Messages for the statuses to move, and the signed notifications about them, one a line."""
        _, number = self.main
        messages = INGEST_BODIES * STATUSES_PER_BODY // 2  # each message gets delivered, then read
        with psycopg.connect(self.url, autocommit=True) as conn:
            number_pk, tenant_id = conn.execute("SELECT id, tenant_id FROM phone_numbers WHERE phone_number_id = %s",
                                                (number,)).fetchone()
            conn.execute(
                "INSERT INTO messages (tenant_id, phone_number_id, direction, wa_id, type, body_summary, "
                "wa_message_id, status, opened_conversation, created_at, updated_at) "
                "SELECT %s, %s, 'out', '4470000' || lpad(n::text, 5, '0'), 'text', 'bench', "
                "'wamid.bench' || lpad(n::text, 8, '0'), 'accepted', false, now(), now() "
                "FROM generate_series(0, %s - 1) AS n", (tenant_id, number_pk, messages))
        stamp = int(time.time())
        path = self.logs / "ingest-bodies.tsv"
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
                digest = hmac.new(APP_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
                out.write(f"sha256={digest}\t{body}\n")
        self.notes["ingest_messages"] = str(messages)
        return path

    def run_ingest(self) -> None:
        bodies = self.ingest_bodies()
        print(f"ingest: {self.web_command}", flush=True)
        proc, port = self.serve("app-ingest", self.web_command, self.app_dir, {})
        try:
            self.env["BENCH_BODIES"] = str(bodies)
            self.wrk(port, "ingest", 2, [("unused", "0")], seconds=2)  # warm up
            self.drain()
            for label, connections, pause_ms in INGEST_POINTS:
                self.env["BENCH_DELAY_MS"] = str(pause_ms)
                load = os.getloadavg()[0]
                result = self.measure(label, port, "ingest", connections, [("unused", "0")])
                result["load"] = (load, os.getloadavg()[0])
                drained = self.drain()
                result["statuses_per_s"] = result["rps"] * STATUSES_PER_BODY
                result["drain_s"] = drained
                posted = result["requests"] * STATUSES_PER_BODY
                applied_in = self.args.seconds + (drained or 0)
                print(f"    {result['statuses_per_s']:.0f} statuses/s taken in; every stored notification applied "
                      f"{'after %.1f s more' % drained if drained is not None else 'NOT within the limit'} "
                      f"(~{posted / applied_in:.0f} statuses/s applied)", flush=True)
            self.check_applied()
        finally:
            self.procs.stop(proc)
            self.env.pop("BENCH_BODIES", None)
            self.env.pop("BENCH_DELAY_MS", None)

    def drain(self) -> float | None:
        """Seconds until no stored notification is left unapplied (None: not within the limit)."""
        started = time.monotonic()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while time.monotonic() - started < INGEST_DRAIN_LIMIT_S:
                left = conn.execute("SELECT count(*) FROM whatsapp_notifications WHERE processed_at IS NULL"
                                    ).fetchone()[0]
                if left == 0:
                    return time.monotonic() - started
                time.sleep(0.5)
        return None

    def check_applied(self) -> None:
        """Every bench message delivered and read, with its charge; no notification with an error."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            total, applied = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'read' AND delivered_at IS NOT NULL "
                "AND read_at IS NOT NULL AND pricing_category = 'utility' AND wa_conversation_id IS NOT NULL) "
                "FROM messages WHERE wa_message_id LIKE 'wamid.bench%'").fetchone()
            stored, unapplied, failed = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL), count(*) FILTER (WHERE error IS "
                "NOT NULL) FROM whatsapp_notifications").fetchone()
        ok = total > 0 and applied == total and unapplied == 0 and failed == 0
        self.notes["ingest_verdict"] = (
            f"{'PASS' if ok else 'FAIL'}: {applied} of {total} messages delivered and read with their pricing; "
            f"{stored} notifications stored, {unapplied} unapplied, {failed} with an error")
        print(f"ingest check: {self.notes['ingest_verdict']}", flush=True)

    def slow_clients(self, port: int) -> None:
        seconds = self.args.seconds
        self.measure("victim new, unloaded", port, "new", 16, [self.victim])
        key, number = self.main
        argv = [sys.executable, str(BENCH_DIR / "slowloris.py"), "--port", str(port), "--number", number,
                "--key", key, "--connections", str(SLOW_CLIENTS), "--seconds", str(seconds + 15),
                "--max-connects", str(SLOW_CLIENTS * 10)]
        dribblers = self.procs.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(3)  # let them connect and send their headers
            self.measure(f"victim new, {SLOW_CLIENTS} slow clients", port, "new", 16, [self.victim], settle=False)
            os.killpg(dribblers.pid, signal.SIGTERM)
            out, _ = dribblers.communicate(timeout=15)
            self.settle(port)
            found = re.search(r"^SLOWLORIS (\{.*\})$", out, re.M)
            self.notes["slowloris"] = found.group(1) if found else out.strip()[-500:]
        finally:
            self.procs.stop(dribblers, grace=2)

    def usage_check(self) -> None:
        """`flask usage check`, retried for up to 10 s while counters settle."""
        deadline = time.monotonic() + 10
        while True:
            time.sleep(1)
            try:
                done = self.flask("usage", "check", timeout=300)
            except subprocess.TimeoutExpired:
                verdict, output = "FAIL (no answer within 300 s)", ""
                break
            output = (done.stdout + done.stderr).strip()
            if done.returncode != 0 and "No such command" in output:
                verdict, output = "usage check unavailable", ""
                break
            if done.returncode == 0 or time.monotonic() >= deadline:
                verdict = "PASS" if done.returncode == 0 else f"FAIL (exit {done.returncode})"
                break
        self.notes["usage_verdict"], self.notes["usage_output"] = verdict, output
        print(f"usage check: {verdict}\n{self.notes['usage_output']}", flush=True)

    # -- report ------------------------------------------------------------------------------
    def get(self, label: str, connections: int) -> dict | None:
        return self.results.get((label, connections))

    def ratio(self, a: dict | None, b: dict | None, key: str = "rps") -> float | None:
        if a is None or b is None or a[key] is None or not b[key]:
            return None
        return a[key] / b[key]

    def report(self) -> str:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=self.app_dir, capture_output=True,
                                text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=self.app_dir,
                               capture_output=True, text=True).stdout.strip()
        lines = [
            "# Send benchmark",
            "",
            f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os.cpu_count()} cores (nproc "
            f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}); "
            f"web: `{self.web_command}`; commit {commit}{' (with uncommitted changes)' if dirty else ''}; "
            f"{self.args.seconds:g} s per point, wrk timeout {WRK_TIMEOUT_S} s, PostgreSQL on loopback.",
            "",
            "| workload | connections | req/s | p50 ms | p99 ms | non-2xx | ratio to forwarder (no db) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for (label, connections), r in self.results.items():
            bad = str(r["non2xx"])
            if r["socket_errors"]:
                bad += f" (+{r['socket_errors']} socket errors, {r['timeouts']} timeouts)"
            ratio = None if label.startswith("ingest") else self.ratio(
                r, self.get("forwarder chat" if "chat" in label else "forwarder new", connections))
            lines.append(f"| {label} | {connections} | {r['rps']:.1f} | {ms(r['p50'])} | {ms(r['p99'])} | {bad} | "
                         f"{fmt(ratio)} |")
        lines.append("")
        ratios = [f"{mix} c={c}: {fmt(self.ratio(self.get(f'app {mix}', c), self.get(f'forwarder {mix}', c)))}"
                  for mix in ("new", "chat") for c in CONNECTIONS if self.get(f"app {mix}", c)]
        lines.append("- App / forwarder (no db) req/s: " + (", ".join(ratios) or "n/a"))
        for mix in ("new", "chat"):
            app1, ins1 = self.get(f"app {mix}", 1), self.get(f"forwarder-insert {mix}", 1)
            if app1 and ins1:
                lines.append(f"- p50 at 1 connection, {mix}: app {ms(app1['p50'])} ms / insert-forwarder "
                             f"{ms(ins1['p50'])} ms = {fmt(self.ratio(app1, ins1, 'p50'))}")
        slow, fast = self.get("app chat, sandbox 200 ms", 256), self.get("app chat, sandbox 0 ms", 256)
        if slow and fast:
            lines.append(f"- Slow sandbox (200 ms) / instant sandbox, chat at 256: {slow['rps']:.1f} / "
                         f"{fast['rps']:.1f} req/s = {fmt(self.ratio(slow, fast))}; 5xx: {slow['5xx']} "
                         f"(instant: {fast['5xx']})")
        loaded = self.get(f"victim new, {SLOW_CLIENTS} slow clients", 16)
        unloaded = self.get("victim new, unloaded", 16)
        if loaded and unloaded:
            lines.append(f"- Slow clients: victim's new sends at 16 with {SLOW_CLIENTS} slow clients "
                         f"{loaded['rps']:.1f} req/s, p99 {ms(loaded['p99'])} ms, vs unloaded "
                         f"{unloaded['rps']:.1f} req/s, p99 {ms(unloaded['p99'])} ms "
                         f"(= {fmt(self.ratio(loaded, unloaded))}; wrk counts answered requests only); "
                         f"dribblers: {self.notes.get('slowloris', 'n/a')}")
        ten, one = self.get("app ten tenants new", 64), self.get("app new", 64)
        if ten:
            lines.append(f"- Ten tenants at once vs one tenant, new at 64: {ten['rps']:.1f} / "
                         f"{ms(one and one['rps'])} req/s = {fmt(self.ratio(ten, one))}")
        for label, c, _ in INGEST_POINTS:
            r = self.get(label, c)
            if r:
                drained = r.get("drain_s")
                lines.append(f"- {label[0].upper() + label[1:]} at {c}: {r['statuses_per_s']:.0f} statuses/s "
                             f"({r['rps']:.1f} notifications/s x {STATUSES_PER_BODY}), p99 {ms(r['p99'])} ms; "
                             "stored notifications were all applied "
                             + (f"{drained:.1f} s after the run" if drained is not None else "NOT within the limit")
                             + " (machine load average {:.1f} before, {:.1f} after)".format(*r["load"]))
        lines += live_sends.report_lines(self)
        lines += noisy_neighbour.report_lines(self) + send_many.report_lines(self)
        if "ingest_verdict" in self.notes:
            lines.append(f"- Ingest check: {self.notes['ingest_verdict']}")
        if "usage_verdict" in self.notes:
            lines.append(f"- Usage check: {self.notes['usage_verdict']}")
            if self.notes["usage_output"]:
                lines += ["", "```", self.notes["usage_output"][-2000:], "```"]
        lines += ["", "## Targets", ""] + [f"- {verdict}: {text}" for verdict, text in self.targets()]
        return "\n".join(lines) + "\n"

    def targets(self) -> list[tuple[str, str]]:
        def check(value, ok, text, shown):
            if value is None:
                return "SKIP", f"{text} (not measured)"
            return ("PASS" if ok(value) else "FAIL"), f"{text} (got {shown(value)})"

        out = []
        for mix in ("new", "chat"):
            for c in (16, 64):
                out.append(check(self.ratio(self.get(f"app {mix}", c), self.get(f"forwarder {mix}", c)),
                                 lambda r: r >= 0.33, f"app/forwarder >= 0.33 for {mix} at {c}", fmt))
        for mix in ("new", "chat"):
            r = self.get(f"app {mix}", 16)
            p99 = r and (float("inf") if r["p99"] is None else r["p99"])  # nothing answered: as bad as it gets
            out.append(check(p99, lambda p: p < 250, f"app p99 < 250 ms for {mix} at 16", lambda p: f"{p:.1f} ms"))
        out.append(check(self.ratio(self.get("app ten tenants new", 64), self.get("forwarder new", 64)),
                         lambda r: r >= 0.33, "ten tenants total >= 0.33 of forwarder new at 64", fmt))
        for mix in ("new", "chat"):
            out.append(check(self.ratio(self.get(f"app {mix}", 1), self.get(f"forwarder-insert {mix}", 1), "p50"),
                             lambda r: r <= 2.0, f"app p50 at 1 connection <= 2x insert-forwarder p50, {mix}",
                             lambda r: f"{r:.2f}x"))
        for label, c in (("ingest", 16), ("ingest paced ~40/s", 4)):
            r = self.get(label, c)
            out.append(check(r and r["statuses_per_s"], lambda v: v >= 2000,
                             f"{label} >= 2,000 statuses/s at {c} connections", lambda v: f"{v:.0f}/s"))
            out.append(check(r and (float("inf") if r["p99"] is None else r["p99"]), lambda p: p < 250,
                             f"{label} p99 < 250 ms at {c} connections", lambda p: f"{p:.1f} ms"))
        paced = self.get("ingest paced ~40/s", 4)
        out.append(check(paced and paced.get("drain_s"), lambda s: s is not None and s < 5,
                         "paced ingest: applying keeps up (backlog applied within 5 s of the run's end)",
                         lambda s: f"{s:.1f} s"))
        if "ingest_verdict" in self.notes:
            out.append((self.notes["ingest_verdict"][:4], "every ingested status applied"))
        slow, fast = self.get("app chat, sandbox 200 ms", 256), self.get("app chat, sandbox 0 ms", 256)
        r = self.ratio(slow, fast)
        out.append(check(None if r is None else (r, slow["5xx"]), lambda v: v[0] >= 0.8 and v[1] == 0,
                         "slow sandbox at 256 >= 0.8x instant sandbox, no 5xx",
                         lambda v: f"{v[0]:.2f}x, {v[1]} 5xx"))
        return out + live_sends.targets(self) + noisy_neighbour.targets(self) + send_many.targets(self)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", default=str(BENCH_DIR.parent), help="checkout to serve (default: this one)")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 15)),
                        help="seconds per measured point (default: BENCH_SECONDS or 15)")
    parser.add_argument("--only", nargs="+", metavar="WORKLOAD", help=f"run only these: {' '.join(WORKLOADS)}")
    parser.add_argument("--output", default=str(BENCH_DIR / "RESULTS.md"), help="Markdown report to write")
    parser.add_argument("--before", metavar="DIR", help="another checkout whose app's new sends are measured too")
    args = parser.parse_args(argv)
    only = set(WORKLOADS)
    if args.only:
        only = {name for item in args.only for name in item.split(",") if name}
        unknown = only - set(WORKLOADS)
        if unknown:
            parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be between 1 and 300")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    bench = Bench(args)
    started = time.monotonic()
    try:
        print(f"preparing {bench.url} from {bench.app_dir} (logs in {bench.logs})", flush=True)
        bench.prepare_database()
        if "forwarder" in only:
            bench.run_forwarder("forwarder", insert=False)
        if "forwarder-insert" in only:
            bench.run_forwarder("forwarder-insert", insert=True)
        if "send-many" in only:
            send_many.run(bench)
        if args.before:
            send_many.run_before(bench, args.before)
        if only & APP_WORKLOADS:
            bench.run_app(only)
        if "ingest" in only:
            bench.run_ingest()
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        bench.procs.stop_all()
    report = bench.report()
    print()
    print(report)
    Path(args.output).write_text(report)
    print(f"wrote {args.output} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
