"""Where one send's time goes: sends one after another in this process, under cProfile, and splits their CPU.

    .venv/bin/python bench/profile_send.py --mode live --sends 500
    .venv/bin/python bench/profile_send.py --mode sandbox --sends 500 --top 30

No server and no concurrency: the app is built here (HOUSEKEEPING off, so no
background thread), a tenant with a live number and open customer-service
windows is created in BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/relay_bench_profile, created when
missing; run after migrations: `flask db upgrade && flask seed` there, or after
`make bench`, whose database it may share), and every send goes through
Flask's test client to bench/graph_server.py (answering at once unless
--graph-delay-ms). Prints, per send: wall and CPU ms, SQL statements (those the requests ran
themselves apart) and the wall time spent in them, and the CPU split by
library (tottime summed by where the function lives), then the functions with
the most own CPU. The CPU and statements count the whole send in this process:
what it leaves to the background threads after its answer (the sandbox's
status walks, the delivery of its domain events to each consumer) too, split by
part (bench/send_parts.py), each thread profiled on its own CPU clock.
``--concurrency N`` sends from N threads at once instead (each request on its
own connection, as a server's greenlets are), so sends that arrive together
share their transactions.
"""
from __future__ import annotations

import argparse
import os
import pstats
import re
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

from send_parts import Parts

BENCH_DIR = Path(__file__).resolve().parent
FERNET_KEY = "x9Gj0eKqk0p2M1o5Y2m2f8qVZ0jv3QXb6Zy9yQ1K8fU="
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/relay_bench_profile"
# Where a function's own CPU is counted: the first pattern its file matches.
LIBRARIES = (
    ("requests", r"/requests/"), ("urllib3", r"/urllib3/"), ("http.client/socket/ssl", r"/(http/client|socket|ssl)\.py"),
    ("psycopg", r"/psycopg/|psycopg_c|psycopg_binary"), ("sqlalchemy", r"/sqlalchemy/"),
    ("cryptography (Fernet)", r"/cryptography/|fernet"), ("json", r"/json/|_json"),
    ("flask/werkzeug", r"/(flask|werkzeug)/"), ("marshmallow", r"/marshmallow/"), ("the app (saas/)", r"/saas/"),
    ("logging", r"/logging/"), ("email/parsing", r"/email/"),
)


def library(filename: str) -> str:
    for name, pattern in LIBRARIES:
        if re.search(pattern, filename):
            return name
    return "other (stdlib, builtins)" if filename.startswith(("~", "<")) or "/lib/python3" in filename else "other"


def print_cpu_by_library(stats: pstats.Stats, n: int, each: str, top: int) -> None:
    """The profiled functions' own CPU summed by library, per ``each`` (a send, a refusal) of ``n``, then the
    ``top`` functions with the most own CPU."""
    by_library = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        by_library[library(filename)] += tottime
    total = sum(by_library.values()) or 1
    print(f"  own CPU per {each} by library:")
    for name, seconds in sorted(by_library.items(), key=lambda item: -item[1]):
        print(f"    {name:28s} {1000 * seconds / n:6.3f} ms  {100 * seconds / total:5.1f}%")
    print()
    stats.sort_stats("tottime").print_stats(top)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("live", "sandbox"), default="live")
    parser.add_argument("--sends", type=int, default=500)
    parser.add_argument("--graph-delay-ms", type=float, default=0.0)
    parser.add_argument("--top", type=int, default=25, help="functions with the most own CPU to list")
    parser.add_argument("--statements", type=int, default=0, help="list this many SQL statements, by count per send")
    parser.add_argument("--callees", help="also list by cumulative CPU the functions matching this regex")
    parser.add_argument("--part", action="append", help="profile only the parts (bench/send_parts.py) whose names "
                        "contain this (request, walk, consumer, inbox...); again for more")
    parser.add_argument("--app-dir", default=str(BENCH_DIR.parent))
    parser.add_argument("--concurrency", type=int, default=1, help="threads sending at once (1: one after another)")
    parser.add_argument("--no-cprofile", action="store_true",
                        help="CPU and wall per send only, without the profiler's own cost (to compare checkouts)")
    args = parser.parse_args(argv)

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    token = "EAAGprofile" + secrets.token_urlsafe(16)
    with app_against_graph(url, token, args.app_dir, delay_ms=args.graph_delay_ms):
        return profile(args, token)


@contextmanager
def app_against_graph(url: str, token: str, app_dir: str, *, delay_ms: float = 0.0, **env: str):
    """bench/graph_server.py on loopback taking ``token``, and this process's environment set for building the
    app in it against that Graph and the database ``url`` (no housekeeping, no Redis, ``app_dir`` importable)."""
    graph = subprocess.Popen([sys.executable, "-u", str(BENCH_DIR / "graph_server.py"), "--port", "0",
                              "--delay-ms", str(delay_ms), "--token", token],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(graph.stdout.readline().split()[1])
        os.environ.update(DATABASE_URL=url, SECRET_KEY="bench", TOKEN_ENCRYPTION_KEY=FERNET_KEY, LOG_LEVEL="WARNING",
                          WHATSAPP_PAIR_RATE_BURST="0", HOUSEKEEPING="0",
                          WHATSAPP_GRAPH_URL=f"http://127.0.0.1:{port}", **env)
        os.environ.pop("REDIS_URL", None)
        sys.path.insert(0, app_dir)
        yield port
    finally:
        graph.terminate()
        graph.wait(5)


def sending_tenant(app, args, token: str) -> tuple[str, str, list[str]]:
    """A new enterprise tenant (its rate limit out of the way) sending from a live or its sandbox number, with
    the windows of enough contacts open; (its API key, the number's phone_number_id, the contacts)."""
    from sqlalchemy import text

    from saas.extensions import db
    from saas.messaging.models import PhoneNumber
    from saas.crypto import encrypt_token
    from saas.messaging.numbers.phone_numbers import numbers_for
    from saas.onboarding.services import sign_up
    from saas.tenants import services as accounts

    stamp = secrets.token_hex(4)
    with app.app_context():
        db.session.execute(text("UPDATE plans SET rate_limit_per_minute = 10000000 WHERE code = 'enterprise'"))
        user = sign_up(f"Profile {stamp}", f"profile-{stamp}@bench.example.com", "bench password",
                       plan_code="enterprise", verified=True)
        tenant = user.tenant
        key = accounts.create_api_key(tenant, "profile").secret
        if args.mode == "live":
            number = PhoneNumber(tenant_id=tenant.id, phone_number_id="1" + str(secrets.randbelow(10**14)).zfill(14),
                                 waba_id="2" + str(secrets.randbelow(10**14)).zfill(14),
                                 display_number="+1 555-020-0002", verified_name="Profile", mode="live",
                                 access_token_encrypted=encrypt_token(token), messaging_limit_tier="TIER_UNLIMITED")
            db.session.add(number)
            db.session.flush()
        else:
            number = numbers_for(tenant)[0]
        number_pk, phone_number_id, tenant_id = number.id, number.phone_number_id, tenant.id
        contacts = [f"47{stamp_digits(stamp)}{n:06d}" for n in range(args.sends + 50)]
        db.session.execute(text(
            "INSERT INTO service_windows (tenant_id, phone_number_id, contact, opened_at, last_inbound_at, expires_at) "
            "SELECT :tenant, :number, c, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', "
            "(now() AT TIME ZONE 'utc') + interval '24 hours' FROM unnest(CAST(:contacts AS text[])) AS c"),
            {"tenant": tenant_id, "number": number_pk, "contacts": contacts})
        db.session.commit()
    return key, phone_number_id, contacts


# Threads that run requests: the main one, and the senders of --concurrency.
SENDER_THREADS = ("MainThread", "sender")


def watch_database(engine, texts: Counter | None = None, parts: Parts | None = None) -> tuple[list, list, list]:
    """Counts on the engine from now on: ([SQL statements, those of requests' threads, commits], [their wall seconds],
    [seconds each pooled connection was held]), to be reset between the warm-up and the measure; each
    statement's text is counted in ``texts`` when given, and each statement to the part running in ``parts``."""
    from sqlalchemy import event

    statements, in_db, held = [0, 0, 0], [0.0], []

    @event.listens_for(engine, "commit")
    def commit(conn):
        statements[2] += 1

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_connection, record, proxy):
        record.info["bench_checked_out"] = time.perf_counter()

    @event.listens_for(engine, "checkin")
    def checkin(dbapi_connection, record):
        started = record.info.pop("bench_checked_out", None)
        if started is not None:
            held.append(time.perf_counter() - started)

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        statements[0] += 1
        statements[1] += threading.current_thread().name.startswith(SENDER_THREADS)
        if texts is not None:
            texts[" ".join(statement.split())[:110]] += 1
        if parts is not None:
            parts.count_statement()
        in_db[0] += time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())

    return statements, in_db, held


def profile(args, token: str) -> int:
    from saas import create_app
    from saas.extensions import db

    app = create_app()
    key, phone_number_id, contacts = sending_tenant(app, args, token)
    parts = Parts(profile=not args.no_cprofile)
    parts.install()
    with app.app_context():
        texts = Counter() if args.statements else None
        statements, in_db, held = watch_database(db.engine, texts, parts)

    headers = {"Authorization": f"Bearer {key}"}
    path = f"/v23.0/{phone_number_id}/messages"
    clients = threading.local()

    def send(to):
        if not hasattr(clients, "client"):
            clients.client = app.test_client()
        with parts.part("request"):
            response = clients.client.post(path, headers=headers, json={"messaging_product": "whatsapp", "to": to,
                                                                        "type": "text", "text": {"body": "bench"}})
        if response.status_code != 200:
            raise SystemExit(f"send answered {response.status_code}: {response.get_data(as_text=True)}")

    def send_all(recipients):
        if args.concurrency <= 1:
            for to in recipients:
                send(to)
            return
        with ThreadPoolExecutor(args.concurrency, thread_name_prefix="sender") as pool:
            list(pool.map(send, recipients))

    send_all(contacts[args.sends:])  # warm up: caches, pools, first connections
    quiet(statements)  # and its follow-ups done, so that none of them is counted below
    statements[:], in_db[0] = [0, 0, 0], 0.0
    held.clear()
    parts.reset()
    if texts is not None:
        texts.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    cpu_started = cpu
    send_all(contacts[:args.sends])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    quiet(statements)
    follow_ups_cpu = time.process_time() - cpu_started - cpu
    n = args.sends
    how = "one after another" if args.concurrency <= 1 else f"from {args.concurrency} threads at once"
    print(f"{args.mode}: {n} sends {how}, Graph answering after {args.graph_delay_ms:g} ms")
    print(f"  per send: wall {1000 * wall / n:.2f} ms, CPU {1000 * cpu / n:.2f} ms"
          f"{'' if args.no_cprofile else ' (under cProfile)'} and {1000 * follow_ups_cpu / n:.2f} ms after the last "
          f"answer (follow-ups finishing), {statements[0] / n:.1f} SQL statements "
          f"({statements[1] / n:.1f} in the request itself) taking {1000 * in_db[0] / n:.2f} ms wall; "
          f"{statements[2] / n:.2f} commits (autocommitted statements not counted)")
    parts.print_split(n, cpu + follow_ups_cpu)
    if args.no_cprofile:
        return 0
    if held:
        held.sort()
        long = sum(h * 1000 >= args.graph_delay_ms for h in held) if args.graph_delay_ms else "n/a"
        print(f"  a pooled connection was checked out {len(held) / n:.1f} times a send, held {1000 * sum(held) / n:.2f} ms "
              f"a send in all; one checkout held p50 {1000 * held[len(held) // 2]:.1f} ms, p99 "
              f"{1000 * held[int(len(held) * 0.99)]:.1f} ms, max {1000 * held[-1]:.1f} ms; {long} of {len(held)} as "
              f"long as the Graph call ({args.graph_delay_ms:g} ms), as every send's would be if held across it")
    if texts is not None:
        print("  SQL statements per send, most frequent first:")
        for statement, count in texts.most_common(args.statements):
            print(f"    {count / n:5.2f}  {statement}")
    stats = parts.stats(args.part)
    if stats is None:
        return 0
    print_cpu_by_library(stats, n, "send", args.top)
    if args.callees:
        stats.sort_stats("cumulative").print_stats(args.callees)
    return 0


def quiet(statements: list, seconds: float = 1.0) -> None:
    """Wait until the follow-ups of the sends (status walks, event deliveries, in this process's background
    threads) are done: no statement for ``seconds``; their statements count for the sends too."""
    while True:
        before = statements[0]
        time.sleep(seconds)
        if statements[0] == before:
            return


def stamp_digits(stamp: str) -> str:
    return str(int(stamp, 16) % 10**5).zfill(5)


if __name__ == "__main__":
    sys.exit(main())
