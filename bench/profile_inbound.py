"""Where an inbound message's time goes, from its stored notification to the auto-reply at the Graph.

    .venv/bin/python bench/profile_inbound.py --messages 300
    .venv/bin/python bench/profile_inbound.py --messages 300 --statements 40 --top 30

No server and no concurrency: the app is built here (HOUSEKEEPING off), an enterprise tenant with a live
number and a keyword rule answering "hello" is created in BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/relay_bench_profile; migrate and seed it first, or point it at the
database ``make bench`` prepared), and the messages, each from a new customer, are stored as the webhook
stores them. Then, in this thread and one phase after the other: the stored notifications are applied (as
the background job applies them: parsed, written, their domain events delivered to the inbox and the rules),
and the replies the rule queued are sent to bench/graph_server.py. Prints, per inbound message and phase:
wall and CPU ms, SQL statements and their wall time, the CPU split by library, and the statements by count.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

from profile_send import app_against_graph, print_cpu_by_library, watch_database

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/relay_bench_profile"


class Recorder:
    """Stands in for the app's background queue: what is queued is kept, and run by the phase that wants it."""

    def __init__(self):
        self.jobs: list[tuple] = []

    def enqueue(self, path: str, *args) -> None:
        self.jobs.append((path, args))

    def take(self, path: str) -> list[tuple]:
        mine = [args for p, args in self.jobs if p == path]
        self.jobs = [(p, args) for p, args in self.jobs if p != path]
        return mine


def shop(app, token: str) -> tuple[str, int]:
    """An enterprise tenant with a live number and a rule answering "hello"; (phone_number_id, tenant id)."""
    from sqlalchemy import text

    from saas.automation.rules import create_rule
    from saas.crypto import encrypt_token
    from saas.extensions import db
    from saas.messaging.models import PhoneNumber
    from saas.onboarding.services import sign_up

    stamp = secrets.token_hex(4)
    with app.app_context():
        db.session.execute(text("UPDATE plans SET rate_limit_per_minute = 10000000 WHERE code = 'enterprise'"))
        tenant = sign_up(f"Inbound {stamp}", f"inbound-{stamp}@bench.example.com", "bench password",
                         plan_code="enterprise", verified=True).tenant
        number = PhoneNumber(tenant_id=tenant.id, phone_number_id="1" + str(secrets.randbelow(10**14)).zfill(14),
                             waba_id="2" + str(secrets.randbelow(10**14)).zfill(14),
                             display_number="+1 555-020-0003", verified_name="Inbound", mode="live",
                             access_token_encrypted=encrypt_token(token), messaging_limit_tier="TIER_UNLIMITED")
        db.session.add(number)
        db.session.commit()
        create_rule(tenant, {"name": "Order questions", "enabled": True, "trigger": "keyword", "match": "contains",
                             "pattern": "hello", "actions": [{"type": "reply", "message": {
                                 "type": "text", "text": {"body": "Thanks! Track your order."}}}]})
        return number.phone_number_id, tenant.id


def store(app, phone_number_id: str, n: int) -> list[int]:
    """``n`` notifications, each a text from a new customer, stored as the webhook stores them."""
    from sqlalchemy import insert

    from inbound import notification
    from saas.extensions import db
    from saas.messaging.models import WhatsAppNotification
    from saas.timeutil import utcnow

    prefix = str(secrets.randbelow(10**4)).zfill(4)
    with app.app_context():
        rows = [{"body": json.dumps(notification(phone_number_id, f"1659{prefix}{i:05d}", "hello")),
                 "received_at": utcnow(), "attempts": 0} for i in range(n)]
        ids = list(db.session.scalars(insert(WhatsAppNotification).returning(WhatsAppNotification.id), rows))
        db.session.commit()
    return ids


def phase(name: str, n: int, args, watched, work) -> None:
    statements, in_db, texts = watched
    statements[0], in_db[0] = 0, 0.0
    texts.clear()
    profiler = cProfile.Profile(time.process_time)
    wall, cpu = time.perf_counter(), time.process_time()
    if args.cprofile:
        profiler.enable()
    work()
    profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{name}: {n} inbound messages")
    print(f"  per message: wall {1000 * wall / n:.2f} ms, CPU {1000 * cpu / n:.2f} ms{' (under cProfile)' if args.cprofile else ''}, "
          f"{statements[0] / n:.1f} SQL statements taking {1000 * in_db[0] / n:.2f} ms wall")
    if not args.cprofile:
        return
    print("  SQL statements per message, most frequent first:")
    for statement, count in texts.most_common(args.statements):
        print(f"    {count / n:5.2f}  {statement}")
    print_cpu_by_library(pstats.Stats(profiler), n, "message", args.top)


def profile(args, token: str) -> int:
    from saas import create_app
    from saas.automation import sending
    from saas.extensions import db
    from saas.messaging.inbound import notifications

    app = create_app()
    recorder = app.extensions["background"] = Recorder()
    phone_number_id, _ = shop(app, token)

    def apply(ids):
        with app.app_context():
            notifications.apply_many([(i,) for i in ids])
            db.session.remove()

    def send():
        runs = [run_id for batch in recorder.take(sending.JOB) for run_id in batch[0]]
        with app.app_context():
            sent = sending.send_runs(runs)
            db.session.remove()
        deliverer = app.extensions.get("event_deliverer")
        if deliverer is not None:  # the sends' events, handed to it (EVENTS_IN_BACKGROUND)
            deliverer.join(60)
        if sent != len(runs):
            raise SystemExit(f"{len(runs)} replies queued, {sent} sent")

    apply(store(app, phone_number_id, 20))  # warm up: caches, pools, first connections
    send()
    ids = store(app, phone_number_id, args.messages)
    with app.app_context():
        texts = Counter()
        statements, in_db, _ = watch_database(db.engine, texts)
    watched = (statements, in_db, texts)
    phase("applying the stored notifications (inbox, rules)", args.messages, args, watched, lambda: apply(ids))
    phase("sending the auto-replies", args.messages, args, watched, send)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--statements", type=int, default=30)
    parser.add_argument("--no-cprofile", dest="cprofile", action="store_false",
                        help="time without the profiler (and list nothing)")
    parser.add_argument("--app-dir", default=str(BENCH_DIR.parent))
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    token = "EAAGprofile" + secrets.token_urlsafe(16)
    with app_against_graph(url, token, args.app_dir, WHATSAPP_APP_SECRET="profile"):
        return profile(args, token)


if __name__ == "__main__":
    sys.exit(main())
