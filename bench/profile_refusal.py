"""What one refused request costs: a tenant past its plan's rate limit keeps sending, in this process, under cProfile.

    .venv/bin/python bench/profile_refusal.py --refusals 5000
    .venv/bin/python bench/profile_refusal.py --app-dir /path/to/other/checkout --top 30

No server and no concurrency: the app is built here (HOUSEKEEPING off) on
BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/relay_bench_profile;
run `flask db upgrade && flask seed` there first, or after `make bench`). A new
tenant on a plan allowing LIMIT requests a minute sends until it is refused, then
every send after is a refusal (429), through Flask's test client. Prints CPU and
wall time per refusal, the SQL statements a refusal ran, the CPU split by
library, and the functions with the most own CPU. Run it on two checkouts
(``--app-dir``) to compare their refusal paths.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

from profile_send import DEFAULT_DB, FERNET_KEY, print_cpu_by_library

BENCH_DIR = Path(__file__).resolve().parent
LIMIT = 5
FREE_LIMIT = "UPDATE plans SET rate_limit_per_minute = :limit WHERE code = 'free'"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refusals", type=int, default=5000)
    parser.add_argument("--top", type=int, default=20, help="functions with the most own CPU to list")
    parser.add_argument("--app-dir", default=str(BENCH_DIR.parent))
    args = parser.parse_args(argv)
    os.environ.update(DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB), SECRET_KEY="bench",
                      TOKEN_ENCRYPTION_KEY=FERNET_KEY, LOG_LEVEL="WARNING", HOUSEKEEPING="0",
                      # The refusal's own cost: answered at once, not after the pause that keeps clients waiting.
                      RATE_LIMIT_PAUSE_SECONDS="0")
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, args.app_dir)
    return profile(args)


def refused_tenant(app) -> tuple[str, str, int]:
    """A new free tenant, the free plan's limit lowered to LIMIT; (its API key, its sandbox number, the limit
    to put back). A profile database of its own: the limit is put back at the end (restore_limit)."""
    from sqlalchemy import text

    from saas.extensions import db
    from saas.messaging.numbers.phone_numbers import numbers_for
    from saas.onboarding.services import sign_up
    from saas.tenants import services as accounts

    stamp = secrets.token_hex(4)
    with app.app_context():
        saved = db.session.scalar(text("SELECT rate_limit_per_minute FROM plans WHERE code = 'free'"))
        db.session.execute(text(FREE_LIMIT), {"limit": LIMIT})
        db.session.commit()
        tenant = sign_up(f"Refusal {stamp}", f"refusal-{stamp}@bench.example.com", "bench password",
                         plan_code="free", verified=True).tenant
        key = accounts.create_api_key(tenant, "profile").secret
        number = numbers_for(tenant)[0].phone_number_id
        db.session.commit()
    return key, number, saved


def restore_limit(app, saved: int) -> None:
    from sqlalchemy import text

    from saas.extensions import db

    with app.app_context():
        db.session.execute(text(FREE_LIMIT), {"limit": saved})
        db.session.commit()


def profile(args) -> int:
    from sqlalchemy import event

    from saas import create_app
    from saas.extensions import db

    app = create_app()
    key, number, saved = refused_tenant(app)
    with app.app_context():
        engine = db.engine

    statements = [0]

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        statements[0] += 1

    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    path = f"/v23.0/{number}/messages"
    body = {"messaging_product": "whatsapp", "to": "15551230000", "type": "text", "text": {"body": "bench"}}

    slipped = [0]

    def send(expected: int) -> None:
        response = client.post(path, headers=headers, json=body)
        if response.status_code == 200 and expected == 429:
            slipped[0] += 1  # the sliding minute moved on: a place freed up (about one every 60/LIMIT s)
        elif response.status_code != expected:
            raise SystemExit(f"expected {expected}, got {response.status_code}: {response.get_data(as_text=True)}")

    for _ in range(LIMIT):
        send(200)
    for _ in range(200):  # warm up the refusal path: caches, the limiter's keys
        send(429)
    statements[0], slipped[0] = 0, 0
    n = args.refusals
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        send(429)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{n} refusals one after another ({args.app_dir})")
    print(f"  per refusal: CPU {1000 * cpu / n:.3f} ms, wall {1000 * wall / n:.3f} ms, "
          f"{statements[0] / n:.3f} SQL statements (without cProfile; {slipped[0]} of the {n} were sends the "
          "sliding minute let through)")
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    profiler.enable()
    for _ in range(n):
        send(429)
    profiler.disable()
    print(f"  under cProfile: CPU {1000 * (time.process_time() - started) / n:.3f} ms a refusal")
    restore_limit(app, saved)
    print_cpu_by_library(pstats.Stats(profiler), n, "refusal", args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
