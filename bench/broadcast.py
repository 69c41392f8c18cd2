"""The broadcast workload: the engine's sends per second with pacing lifted beside the API's sends in the
same run, the worker's memory as the audience grows, another tenant's API sends during a broadcast, and the
achieved rate when paced at 80 a second.

    make bench BENCH_ARGS="--only broadcast"                     # as part of bench/run.py
    make bench BENCH_ARGS="--only broadcast --broadcast-recipients 20000 --broadcast-delays 0"
    make bench BENCH_ARGS="--only broadcast --broadcast-delays 200 --broadcast-concurrency 32"
    .venv/bin/python bench/broadcast.py --database-url postgresql://postgres@127.0.0.1/bench_broadcast \\
        --recipients 1000 10000 100000 --delay-ms 0 200 --paced-seconds 10          # on its own

In bench/run.py (``BroadcastPhase``), for each delay of WhatsApp's answer (bench/graph_server.py on
loopback, at once and after 200 ms): an Enterprise tenant with a live number, an approved marketing
template with two variables and 1,000 opted-in contacts is broadcast to, pacing lifted, by the worker
(``flask broadcasts run``'s loop, a process of its own): its peak memory. Then another tenant's API sends
(bench/new.lua, its sandbox number) at 16 connections for the run's seconds, alone; then a broadcast to
``--broadcast-recipients`` (100,000 by default): its check runs as the job runs it, the worker sends it,
and once it is sending the other tenant's API sends are measured again, during it. The broadcast's
sends per second are its recipients sent over the time between its first and last send (the audience is
written down first: that time is reported beside it). Last, at the first delay, a broadcast paced at 80 a
second for ``--paced-seconds``: its achieved rate. The served app has BROADCAST_IN_WEB=0 (the worker
sends, as when one is deployed). The worker runs with the app's BROADCAST_BATCH and SEND_MANY_CONCURRENCY
against a Graph answering at once, and with ``--broadcast-batch`` and ``--broadcast-concurrency`` (500 and
256) against a slower one: its rate is at most its calls in flight over the delay.

Each setup step and the worker run in the app's checkout as this script (``--setup``, ``--worker``), so
the bench process imports nothing of the app.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "EAAGbench" + "x" * 24
PACED_RATE = 80
VICTIM_CONNECTIONS = 16
SMALL = 1000


def app_for(url: str, graph_url: str, **config):
    from saas import create_app

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "HOUSEKEEPING": False, "WHATSAPP_GRAPH_URL": graph_url,
                       "WHATSAPP_PAIR_RATE_BURST": 0, **config})


def prepare(url: str) -> None:
    """The standalone run's database: its schema dropped and made again by the migrations, plans seeded."""
    import psycopg
    from flask_migrate import upgrade
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    plain = url.replace("postgresql+psycopg", "postgresql")
    dbname = conninfo_to_dict(plain)["dbname"]
    with psycopg.connect(make_conninfo(plain, dbname="postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    app = app_for(url, "http://127.0.0.1:9")
    with app.app_context():
        from saas.billing.catalog import seed_plans

        upgrade(directory=str(ROOT / "migrations"))
        seed_plans()


def shop(url: str, graph_url: str, recipients: int, tag: str) -> tuple[int, str]:
    """A tenant with a live number, the template and ``recipients`` opted-in contacts; (tenant id, number)."""
    from sqlalchemy import insert, select

    from saas.contacts.models import Consent, Contact
    from saas.crypto import encrypt_token
    from saas.extensions import db
    from saas.messaging.models import PhoneNumber, Template
    from saas.onboarding import services as onboarding

    app = app_for(url, graph_url)
    with app.app_context():
        # No plan limit on contacts or recipients: the engine is measured, not the plan.
        db.session.execute(db.text("UPDATE plans SET max_contacts = NULL, max_broadcast_recipients = NULL "
                                   "WHERE code = 'enterprise'"))
        tenant = onboarding.sign_up(f"Bench {tag}", f"{tag}@bench.example.com", "bench password",
                                    plan_code="enterprise", verified=True).tenant
        phone_number_id = str(10**14 + int.from_bytes(tag.encode(), "big") % 10**13)
        number = PhoneNumber(tenant_id=tenant.id, phone_number_id=phone_number_id, waba_id="2" + phone_number_id[1:],
                             display_number="+90 532 000 0000", mode="live", access_token_encrypted=encrypt_token(TOKEN),
                             messaging_limit_tier="TIER_UNLIMITED")
        db.session.add(number)
        db.session.add(Template(tenant_id=tenant.id, waba_id=number.waba_id, name="spring", language="en_US",
                                category="MARKETING", status="APPROVED", meta_id="1",
                                components=[{"type": "BODY", "text": "Hello {{1}}, your code is {{2}}"}]))
        db.session.commit()
        for start in range(0, recipients, 5000):
            rows = [{"tenant_id": tenant.id, "wa_id": f"90533{i:07d}", "name": f"Customer {i}", "country": "TR",
                     "attributes": {"code": f"C{i}"}, "source": "import"}
                    for i in range(start, min(start + 5000, recipients))]
            db.session.execute(insert(Contact), rows)
            ids = db.session.scalars(select(Contact.id).where(Contact.tenant_id == tenant.id,
                                                              Contact.wa_id.in_([r["wa_id"] for r in rows]))).all()
            db.session.execute(insert(Consent), [{"tenant_id": tenant.id, "contact_id": i, "phone_number_id": number.id,
                                                  "state": "opted_in", "source": "import"} for i in ids])
            db.session.commit()
        # What autovacuum's analyze does after a bulk load (it is off on some servers): without statistics the
        # send path's consent lookup is planned as a scan of all the tenant's contacts, once per batch.
        db.session.execute(db.text("ANALYZE contacts, consents, contact_labels, messages"))
        db.session.commit()
        return tenant.id, phone_number_id


def create_and_start(url: str, graph_url: str, tenant_id: int, phone_number_id: str, rate: int) -> dict:
    """The broadcast to all of the tenant's contacts, its check run as the job runs it (in this process's
    background thread, waited for), then started; {"id", "check_s", "checked"}."""
    from saas.billing import entitlements
    from saas.broadcasts import services
    from saas.extensions import db
    from saas.tenants.services import tenant_snapshot

    app = app_for(url, graph_url)
    with app.app_context():
        tenant = tenant_snapshot(tenant_id)
        rights = entitlements.for_tenant(tenant)
        began = time.monotonic()
        broadcast = services.create(tenant, rights, {
            "name": "Bench", "phone_number_id": phone_number_id, "template": {"name": "spring", "language": "en_US"},
            "variables": {"body.1": {"field": "name"}, "body.2": {"field": "attr:code"}},
            "audience": {"all": True}, "messages_per_second": rate}, inline_max=0)
        broadcast_id = broadcast.id
        db.session.remove()
        if not app.extensions["background"].join(3600):
            raise RuntimeError("the check's job did not finish within an hour")
        checked = time.monotonic() - began
        broadcast = services.get(tenant, broadcast_id)
        if broadcast.check_result is None:
            raise RuntimeError(f"the check of broadcast {broadcast_id} did not finish: {broadcast.check_progress}")
        found = {"id": broadcast_id, "check_s": checked, "checked": broadcast.check_result["recipients"]}
        services.start(tenant, rights, broadcast_id)
        return found


def setup(url: str, graph_url: str, count: int, tag: str, rate: int) -> dict:
    began = time.monotonic()
    tenant_id, number = shop(url, graph_url, count, tag)
    made = time.monotonic() - began
    return {**create_and_start(url, graph_url, tenant_id, number, rate), "contacts_s": made}


def worker(url: str, graph_url: str, paced: bool) -> dict:
    """The worker's loop until nothing is left to send (``flask broadcasts run``'s, built the same way, at the
    CPU priority it lowers itself to; a checkout from before BROADCAST_WORKER_NICE runs at the web's)."""
    from saas.broadcasts import worker as workers

    # The worker shares this machine's cores with the web processes: it gives way to them as README says such a
    # worker should (BROADCAST_BUSY_SHARE 0.2 unless the environment says otherwise).
    share = float(os.environ.get("BROADCAST_BUSY_SHARE", "0.2"))
    app = app_for(url, graph_url, BROADCAST_PACING=paced, BROADCAST_BUSY_SHARE=share)  # the rest from the environment
    with app.app_context():
        runner = workers.worker_runner(app) if hasattr(workers, "worker_runner") else workers.runner_for(app)
        began = time.monotonic()
        claimed = runner.run(until_idle=True)
        seconds = time.monotonic() - began
        paused = getattr(getattr(runner, "yielding", None), "paused", 0.0)
        deferred = getattr(getattr(runner, "deference", None), "paused", 0.0)
    return {"claimed": claimed, "seconds": seconds, "paused_s": paused, "deferred_s": deferred,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def sending(url: str, broadcast_id: int) -> dict:
    """The broadcast's recipients by status, and its sends' span (first to last ``sent_at``)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        counts = dict(conn.execute("SELECT status, count(*) FROM broadcast_recipients WHERE broadcast_id = %s "
                                   "GROUP BY status", (broadcast_id,)).fetchall())
        first, last = conn.execute("SELECT min(sent_at), max(sent_at) FROM broadcast_recipients "
                                   "WHERE broadcast_id = %s AND sent_at IS NOT NULL", (broadcast_id,)).fetchone()
        status = conn.execute("SELECT status FROM broadcasts WHERE id = %s", (broadcast_id,)).fetchone()[0]
    span = (last - first).total_seconds() if first and last else 0.0
    sent = counts.get("sent", 0)
    return {"counts": counts, "status": status, "sent": sent, "span_s": span,
            "per_s": (sent - 1) / span if span else None}


def graph(python: str, delay_ms: float, log: Path | None = None):
    """bench/graph_server.py answering after ``delay_ms``: (process, url)."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([python, str(ROOT / "bench" / "graph_server.py"), "--port", "0", "--delay-ms",
                             f"{delay_ms:g}", "--token", TOKEN], stdout=subprocess.PIPE, stderr=out, text=True,
                            start_new_session=True)
    port = int(re.search(r"GRAPH_FAKE_PORT (\d+)", proc.stdout.readline()).group(1))
    return proc, f"http://127.0.0.1:{port}"


# -- in bench/run.py ---------------------------------------------------------------------------------------

def label(what: str, delay: float) -> str:
    return f"{what} (Graph {delay:g} ms)"


class BroadcastPhase:
    """The broadcast phase of run_app, on the app served with BROADCAST_IN_WEB=0."""

    name = "app-broadcast"

    def __init__(self, bench):
        self.bench = bench
        self.args = bench.args
        self.results: dict[float, dict] = {}
        self.paced: dict | None = None

    def env(self) -> dict:
        return {"BROADCAST_IN_WEB": "0", "SANDBOX_LATENCY_MS": "0"}

    def script(self, *argv: str, delay: float = 0.0, background: bool = False):
        bench = self.bench
        command = [str(bench.bin / "python"), str(Path(__file__).resolve()), "--database-url", bench.url, *argv]
        env = {**bench.env, "PYTHONPATH": str(bench.app_dir)}
        if delay:
            # Against a slow Graph a worker's rate is its calls in flight over the delay: more of them.
            env.update(BROADCAST_BATCH=str(self.args.broadcast_batch),
                       SEND_MANY_CONCURRENCY=str(self.args.broadcast_concurrency))
        # Its log goes to a file: a pipe read only once the process ends fills up and stops it mid-batch.
        log = open(bench.logs / "broadcast-workers.log", "a", encoding="utf-8")
        options = {"cwd": bench.app_dir, "stdout": subprocess.PIPE, "stderr": log, "text": True, "env": env}
        try:
            proc = bench.procs.start(command, **options)
        finally:
            log.close()  # the process has its own
        return proc if background else self.result(proc)

    def result(self, proc, timeout: float = 7200) -> dict:
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            self.bench.procs.stop(proc, grace=2)
        found = re.search(r"^RESULT (\{.*\})$", out, re.M)
        if found is None:
            err = (self.bench.logs / "broadcast-workers.log").read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"broadcast.py printed no result (exit {proc.returncode}):\n{out}{err[-3000:]}")
        return json.loads(found.group(1))

    def broadcast(self, graph_url: str, count: int, tag: str, rate: int = 1000) -> dict:
        return self.script("--setup", "--graph-url", graph_url, "--count", str(count), "--tag", tag,
                           "--rate", str(rate))

    def work(self, port: int) -> None:
        bench = self.bench
        victim = [bench.victim]
        for delay in self.args.broadcast_delays:
            proc, graph_url = graph(str(bench.bin / "python"), delay, bench.logs / "broadcast-graph.log")
            try:
                found = self.results[delay] = {}
                print(f"broadcast: Graph answering after {delay:g} ms", flush=True)
                small = self.broadcast(graph_url, SMALL, f"small{int(delay)}")
                found["small"] = {**small, **self.workers(graph_url, delay), **sending(bench.url, small["id"])}
                bench.measure(label("victim new, alone", delay), port, "new", VICTIM_CONNECTIONS, victim)
                count = self.args.broadcast_recipients
                big = self.broadcast(graph_url, count, f"big{int(delay)}")
                print(f"  {count:,} contacts made in {big['contacts_s']:.0f} s; the check's job took "
                      f"{big['check_s']:.1f} s", flush=True)
                running = self.workers(graph_url, delay, background=True)
                self.wait_sending(big["id"], running)
                bench.measure(label("victim new, during a broadcast", delay), port, "new", VICTIM_CONNECTIONS,
                              victim)
                found["big"] = {**big, **self.joined(running), **sending(bench.url, big["id"])}
                self.show(delay, found)
                if delay == self.args.broadcast_delays[0] and self.args.paced_seconds:
                    paced = self.broadcast(graph_url, int(PACED_RATE * self.args.paced_seconds), f"paced{int(delay)}",
                                           rate=PACED_RATE)
                    self.paced = {**paced, **self.script("--worker", "--paced", "--graph-url", graph_url, delay=delay),
                                  **sending(bench.url, paced["id"])}
                    print(f"  paced at {PACED_RATE}/s: {self.paced['per_s']:.1f} sends/s", flush=True)
            finally:
                _stop(proc)
        bench.notes["broadcast"] = {"results": self.results, "paced": self.paced}

    def workers(self, graph_url: str, delay: float, *, background: bool = False):
        """``--broadcast-workers`` worker processes side by side, as a deployment scales the Procfile's
        ``broadcasts`` process: their processes when ``background``, else their results joined."""
        # Against a slow Graph a worker spends most of a batch waiting for WhatsApp's answers: more of them.
        count = self.args.broadcast_slow_workers if delay else self.args.broadcast_workers
        procs = [self.script("--worker", "--graph-url", graph_url, delay=delay, background=True)
                 for _ in range(count)]
        return procs if background else self.joined(procs)

    def joined(self, procs) -> dict:
        """The workers' results as one: what they claimed together, the longest run, the largest worker."""
        found = [self.result(proc) for proc in procs]
        return {"claimed": sum(f["claimed"] for f in found), "seconds": max(f["seconds"] for f in found),
                "paused_s": max(f["paused_s"] for f in found), "deferred_s": max(f["deferred_s"] for f in found),
                "max_rss_mb": max(f["max_rss_mb"] for f in found), "workers": len(found)}

    def wait_sending(self, broadcast_id: int, workers, limit: float = 3600) -> None:
        """Until the workers' first sends of the broadcast are recorded (its audience is written down first)."""
        deadline = time.monotonic() + limit
        while sending(self.bench.url, broadcast_id)["sent"] == 0:
            ended = [w for w in workers if w.poll() is not None]
            if len(ended) == len(workers) or time.monotonic() > deadline:
                raise RuntimeError(f"broadcast {broadcast_id} sent nothing (worker exits "
                                   f"{[w.returncode for w in workers]})")
            time.sleep(0.5)

    def show(self, delay: float, found: dict) -> None:
        small, big = found["small"], found["big"]
        print(f"  broadcast of {big['sent']:,}: {big['per_s']:.1f} sends/s over {big['span_s']:.1f} s of sending "
              f"({big.get('workers', 1)} worker(s), the longest {big['seconds']:.1f} s in all, "
              f"{big.get('paused_s', 0):.1f} s of it paused for busy cores, "
              f"{big.get('deferred_s', 0):.1f} s for others at work in the database); "
              f"worker peak memory {small['max_rss_mb']:.0f} MB at "
              f"{SMALL:,}, {big['max_rss_mb']:.0f} MB at {big['sent']:,}", flush=True)


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(10)


def _ratio(a, b):
    return a / b if a is not None and b else None


def summary(bench) -> tuple[dict, dict | None]:
    found = bench.notes.get("broadcast") or {}
    return found.get("results") or {}, found.get("paced")


def report_lines(bench) -> list[str]:
    results, paced = summary(bench)
    if not results and not paced:
        return []
    lines = ["", "## Broadcasts", "",
             "Workers: `flask broadcasts run`'s loop, each in a process of its own (as the Procfile's "
             "`broadcasts` process scaled), pacing lifted: against a Graph answering at once "
             f"{bench.args.broadcast_workers} with the app's BROADCAST_BATCH and SEND_MANY_CONCURRENCY (100, 16), "
             f"against a slower one {bench.args.broadcast_slow_workers} with {bench.args.broadcast_batch} and "
             f"{bench.args.broadcast_concurrency}; the paced broadcast one; the app served as above with BROADCAST_IN_WEB=0; "
             "the other tenant's API sends are bench/new.lua from its sandbox number. The machine is shared with "
             "other work (test runs): figures of one run, ratios within it.", "",
             "| Graph answers after | recipients | sends/s (first to last send) | the tenant's API sends/s at 16, "
             "alone | broadcast / API | API during / alone | worker peak memory at 1,000 / at the audience | "
             "check (job) | audience written + sent, in all |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for delay, found in results.items():
        big, small = found.get("big"), found.get("small")
        alone = bench.get(label("victim new, alone", delay), VICTIM_CONNECTIONS)
        during = bench.get(label("victim new, during a broadcast", delay), VICTIM_CONNECTIONS)
        if not big or not alone:
            continue
        lines.append(f"| {delay:g} ms | {big['sent']:,} | {big['per_s']:.0f} | {alone['rps']:.0f} | "
                     f"{_ratio(big['per_s'], alone['rps']):.2f}x | "
                     f"{_ratio(during and during['rps'], alone['rps']) or 0:.2f}x | "
                     f"{small['max_rss_mb']:.0f} / {big['max_rss_mb']:.0f} MB "
                     f"({big['max_rss_mb'] / small['max_rss_mb']:.2f}x) | {big['check_s']:.1f} s | "
                     f"{big['seconds']:.0f} s |")
    if paced:
        lines += ["", f"- Paced at {PACED_RATE}/s: {paced['sent']:,} recipients sent at {paced['per_s']:.1f} sends/s "
                      f"(first to last send, {paced['span_s']:.1f} s) = {paced['per_s'] / PACED_RATE:.3f} of "
                      f"{PACED_RATE}"]
    return lines


def targets(bench) -> list[tuple[str, str]]:
    results, paced = summary(bench)
    out = []
    for delay, found in results.items():
        big, small = found.get("big"), found.get("small")
        alone = bench.get(label("victim new, alone", delay), VICTIM_CONNECTIONS)
        during = bench.get(label("victim new, during a broadcast", delay), VICTIM_CONNECTIONS)
        if not big:
            continue
        ratio = _ratio(big["per_s"], alone and alone["rps"])
        everyone = big["sent"] == big["checked"] and big["status"] == "completed"
        out.append(("PASS" if ratio and ratio >= 3 else "FAIL",
                    f"broadcast of {big['sent']:,} (Graph {delay:g} ms) sends/s >= 3x the API's sends/s at 16 in "
                    f"the same run (got {ratio or 0:.2f}x)"))
        growth = big["max_rss_mb"] / small["max_rss_mb"]
        out.append(("PASS" if growth <= 1.15 else "FAIL",
                    f"worker memory flat from {SMALL:,} to {big['sent']:,} recipients, Graph {delay:g} ms: peak "
                    f"within 15% (got {small['max_rss_mb']:.0f} -> {big['max_rss_mb']:.0f} MB, {growth:.2f}x)"))
        kept = _ratio(during and during["rps"], alone and alone["rps"])
        out.append(("PASS" if kept and kept >= 0.8 else "FAIL",
                    f"another tenant's API sends at 16 during the broadcast >= 0.8x alone, Graph {delay:g} ms "
                    f"(got {kept or 0:.2f}x)"))
        out.append(("PASS" if everyone else "FAIL",
                    f"every recipient the check counted was sent once, Graph {delay:g} ms (checked "
                    f"{big['checked']:,}, sent {big['sent']:,}, broadcast {big['status']})"))
    if paced:
        off = abs(paced["per_s"] - PACED_RATE) / PACED_RATE
        out.append(("PASS" if off <= 0.05 else "FAIL",
                    f"paced at {PACED_RATE}/s: achieved within 5% of {PACED_RATE} (got {paced['per_s']:.1f}/s)"))
    return out


def add_arguments(parser) -> None:
    """bench/run.py's options for this workload."""
    parser.add_argument("--broadcast-recipients", type=int, default=100_000,
                        help="the large broadcast's audience (default 100,000)")
    parser.add_argument("--broadcast-delays", type=float, nargs="+", default=[0.0, 200.0],
                        help="WhatsApp's answer delays in ms (default: 0 200)")
    parser.add_argument("--broadcast-batch", type=int, default=500,
                        help="the worker's BROADCAST_BATCH when WhatsApp answers after a delay (default 500)")
    parser.add_argument("--broadcast-concurrency", type=int, default=256,
                        help="the worker's SEND_MANY_CONCURRENCY (Graph calls of a batch at once) when WhatsApp "
                             "answers after a delay (default 256; at once, the app's settings)")
    parser.add_argument("--broadcast-workers", type=int, default=2,
                        help="worker processes side by side against a Graph answering at once (default 2, as many "
                             "as the web's WEB_CONCURRENCY)")
    parser.add_argument("--broadcast-slow-workers", type=int, default=3,
                        help="worker processes side by side when WhatsApp answers after a delay (default 3)")
    parser.add_argument("--paced-seconds", type=float, default=15.0,
                        help="how long the broadcast paced at 80/s runs (its audience is 80 a second of it)")


# -- on its own ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--recipients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--delay-ms", type=float, nargs="+", default=[0.0, 200.0])
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    for hidden in ("--worker", "--setup", "--paced"):
        parser.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--graph-url", "--tag"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    url = args.database_url
    if args.worker:
        print("RESULT " + json.dumps(worker(url, args.graph_url, args.paced)), flush=True)
        return 0
    if args.setup:
        print("RESULT " + json.dumps(setup(url, args.graph_url, args.count, args.tag, args.rate)), flush=True)
        return 0
    prepare(url)
    rows = ["| workload | recipients | WhatsApp answers after | check (job) | sent | sends/s (first to last) | "
            "worker peak memory |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for delay in args.delay_ms:
        proc, graph_url = graph(sys.executable, delay)
        try:
            for count in args.recipients:
                made = setup(url, graph_url, count, f"b{count}d{int(delay)}", 1000)
                result = {**made, **_run_worker(url, graph_url, paced=False), **sending(url, made["id"])}
                rows.append(f"| pacing lifted | {count:,} | {delay:g} ms | {made['check_s']:.1f} s | "
                            f"{result['sent']:,} | {result['per_s']:.0f} | {result['max_rss_mb']:.0f} MB |")
                print(rows[-1], flush=True)
            if delay == args.delay_ms[0] and args.paced_seconds:
                made = setup(url, graph_url, int(PACED_RATE * args.paced_seconds), f"paced{int(delay)}", PACED_RATE)
                result = {**made, **_run_worker(url, graph_url, paced=True), **sending(url, made["id"])}
                rows.append(f"| paced at {PACED_RATE}/s | {result['sent']:,} | {delay:g} ms | {made['check_s']:.1f} s | "
                            f"{result['sent']:,} | {result['per_s']:.1f} | {result['max_rss_mb']:.0f} MB |")
                print(rows[-1], flush=True)
        finally:
            _stop(proc)
    print("\n".join(rows))
    return 0


def _run_worker(url: str, graph_url: str, paced: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", "--database-url", url, "--graph-url", graph_url]
                         + (["--paced"] if paced else []), capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    return json.loads(re.search(r"^RESULT (\{.*\})$", out, re.M).group(1))


if __name__ == "__main__":
    sys.exit(main())
