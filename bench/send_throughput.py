"""Send throughput on loopback: metered sandbox sends against an authenticated read.

Serves the app on 127.0.0.1 (a free port) from a fresh database, then drives it
with THREADS client threads over pooled HTTP connections:

  baseline  GET  /api/v1/numbers                  (key lookup + one scoped query)
  send      POST /v23.0/{phone_number_id}/messages (validation, window, counters,
                                                  message row, usage record, statuses)

Prints requests/s and latency percentiles for each and the send/baseline ratio.

    .venv/bin/python bench/send_throughput.py [--requests 2000] [--threads 8]
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/send_throughput.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from werkzeug.serving import make_server

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("TOKEN_ENCRYPTION_KEY", "x9Gj0eKqk0p2M1o5Y2m2f8qVZ0jv3QXb6Zy9yQ1K8fU=")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("REDIS_URL", None)

from saas import create_app  # noqa: E402
from saas.config import database_url  # noqa: E402
from saas.extensions import db  # noqa: E402


def build_app():
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        url = database_url(url, "")
    else:
        url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        from flask_migrate import upgrade
        from sqlalchemy import text

        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        from saas.billing.catalog import seed_plans
        from saas.messaging.numbers import numbers_for
        from saas.tenants.services import create_api_key, create_tenant

        seed_plans()
        user = create_tenant("Bench Co", "bench@bench.example.com", "bench password", plan_code="enterprise")
        key = create_api_key(user.tenant, "bench").secret
        number = numbers_for(user.tenant)[0].phone_number_id
        db.session.remove()
    return app, url, key, number


def drive(base, key, make_request, total, threads, deadline_s=120.0):
    local = threading.local()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + deadline_s

    def one(i):
        nonlocal errors
        if time.perf_counter() > stop_at:
            return
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
        started = time.perf_counter()
        response = make_request(session, base, i)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            if response.status_code >= 400:
                errors += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--contacts", type=int, default=500)
    args = parser.parse_args()

    app, url, key, number = build_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"

    def read(session, base, i):
        return session.get(f"{base}/api/v1/numbers", timeout=10)

    def send(session, base, i):
        return session.post(f"{base}/v23.0/{number}/messages", timeout=10, json={
            "messaging_product": "whatsapp", "to": f"1444{i % args.contacts:07d}", "type": "text",
            "text": {"body": f"bench {i}"}})

    try:
        drive(base, key, read, 50, 2)  # warm-up
        baseline = drive(base, key, read, args.requests, args.threads)
        sends = drive(base, key, send, args.requests, args.threads)
    finally:
        server.shutdown()

    print(f"database: {url.split(':')[0]}  threads: {args.threads}  requests per phase: {args.requests}")
    for name, result in (("baseline GET /api/v1/numbers", baseline), ("send POST /v23.0/{id}/messages", sends)):
        print(f"{name:34s} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.1f} ms  "
              f"p95 {result['p95_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}")
    print(f"send / baseline throughput ratio: {sends['rps'] / baseline['rps']:.2f}")


if __name__ == "__main__":
    main()
