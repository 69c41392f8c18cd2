"""Load benchmark of the send endpoint, served the way the Procfile serves it.

    make bench                                       # everything, about 25 minutes (15 of them broadcasts)
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
API's sends/s; ``--before DIR`` serves another checkout's app, on a database of its own prepared by its own
migrations (bench/before.py), for its new sends in the same run.

``noisy-neighbour`` serves the app while one tenant on the free plan hammers
past its rate limit and the ten tenants send, and reports their rate with and
without it and the server's CPU per refusal, with refusals paused as configured
and answered at once (bench/noisy_neighbour.py).

``broadcast`` serves the app with BROADCAST_IN_WEB=0 and runs broadcast workers, each in a process of
its own (``--broadcast-workers`` 2; ``--broadcast-slow-workers`` 3 against the slow Graph), against the
loopback Graph (at once, and after 200 ms): a broadcast to 100,000 recipients
(``--broadcast-recipients``) with pacing lifted, its sends/s beside another
tenant's API sends at 16 connections alone and during it, the worker's memory
at 1,000 and at the audience, and a broadcast paced at 80/s (bench/broadcast.py).

Workload names for --only: new chat forwarder forwarder-insert ten-tenants
slow-sandbox slow-clients ingest live noisy-neighbour send-many inbox-page inbound broadcast analytics
export.

``inbound`` posts customers' messages at 100 a second while a keyword rule answers them and agents reply over
the API, and times both (bench/inbound.py). ``inbox-page`` loads 10,000 open threads for the main tenant and
asks for its inbox page, logged in, at 1 and 4 connections (bench/inbox_page.py). ``analytics`` loads 10 million
messages for the main tenant in bulk, rebuilds the daily roll-ups from them with ``flask analytics rebuild``, and
asks for its analytics page over 90 days, logged in, at 1 and 4 connections (bench/analytics.py). ``export``
loads 1,000,000 messages for the main tenant and downloads their CSV export through a streaming client while
reading the gunicorn workers' RSS from /proc (bench/export.py).
"""
from __future__ import annotations

import argparse
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
import analytics
import before
import broadcast
import export
import inbound
import inbox_page
import ingest
import live_sends
import noisy_neighbour
import report
import send_many
from common import CONNECTIONS, SLOW_CLIENTS, WRK_TIMEOUT_S, Processes, http_get, ms, parse_wrk
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/relay_bench"
FERNET_KEY = "x9Gj0eKqk0p2M1o5Y2m2f8qVZ0jv3QXb6Zy9yQ1K8fU="
WORKLOADS = ("new", "chat", "forwarder", "forwarder-insert", "ten-tenants", "slow-sandbox", "slow-clients", "ingest",
             "live", "noisy-neighbour", "send-many", "inbox-page", "inbound", "broadcast", "analytics",
             "export")
APP_WORKLOADS = {"new", "chat", "ten-tenants", "slow-sandbox", "slow-clients", "live", "noisy-neighbour",
                 "broadcast"}
APP_SECRET = "bench-app-secret"


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
        if "broadcast" in only:
            phase = broadcast.BroadcastPhase(self)
            phases.append((phase.name, phase.env, phase.work))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", default=str(BENCH_DIR.parent), help="checkout to serve (default: this one)")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 15)),
                        help="seconds per measured point (default: BENCH_SECONDS or 15)")
    parser.add_argument("--only", nargs="+", metavar="WORKLOAD", help=f"run only these: {' '.join(WORKLOADS)}")
    parser.add_argument("--output", default=str(BENCH_DIR / "RESULTS.md"), help="Markdown report to write")
    parser.add_argument("--before", metavar="DIR", help="another checkout whose app's new sends are measured too")
    broadcast.add_arguments(parser)
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
        if args.before:
            before.run(bench, args.before)
        if "send-many" in only:
            send_many.run(bench)
        if only & APP_WORKLOADS:
            bench.run_app(only)
        if "ingest" in only:
            ingest.run(bench)
        if "inbox-page" in only:
            inbox_page.run(bench)
        if "inbound" in only:
            inbound.run(bench)
        if "analytics" in only:
            analytics.run(bench)
        if "export" in only:
            export.run(bench)
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        bench.procs.stop_all()
    text = report.report(bench)
    print()
    print(text)
    Path(args.output).write_text(text)
    print(f"wrote {args.output} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
