"""The broadcast workload: the engine's sends per second with pacing lifted, the worker's memory as the
audience grows, and the achieved rate when paced at 80 a second.

    .venv/bin/python bench/broadcast.py --database-url postgresql://postgres@127.0.0.1/bench_broadcast \\
        --recipients 1000 10000 100000 --delay-ms 0 200 --paced-seconds 10

Drops and rebuilds the database's schema (the real migrations), then for each audience size and each
delay of WhatsApp's answer (bench/graph_server.py on loopback) makes an Enterprise tenant with a live
number, an approved marketing template with two variables and that many opted-in contacts, creates the
broadcast (the check runs over the whole audience), starts it and runs the worker (``flask broadcasts
run``'s loop) in a process of its own until it is done: recipients/s, the worker's peak memory, the
check's time. Then one broadcast paced at 80 a second for ``--paced-seconds``. Prints a Markdown table.
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
sys.path.insert(0, str(ROOT))
TOKEN = "EAAGbench" + "x" * 24


def app_for(url: str, graph_url: str, **config):
    from saas import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "HOUSEKEEPING": False, "WHATSAPP_GRAPH_URL": graph_url,
                       "WHATSAPP_PAIR_RATE_BURST": 0, **config})


def prepare(url: str) -> None:
    import psycopg
    from flask_migrate import upgrade
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dbname = conninfo_to_dict(url.replace("postgresql+psycopg", "postgresql"))["dbname"]
    plain = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(make_conninfo(plain, dbname="postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    app = app_for(url, "http://127.0.0.1:9")
    with app.app_context():
        from saas.billing.catalog import seed_plans
        from saas.extensions import db

        upgrade(directory=str(ROOT / "migrations"))
        seed_plans()
        db.session.execute(db.text("UPDATE plans SET max_contacts = NULL, max_broadcast_recipients = NULL"))
        db.session.commit()


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
        tenant = onboarding.sign_up(f"Bench {tag}", f"{tag}@bench.example.com", "bench password",
                                    plan_code="enterprise", verified=True).tenant
        phone_number_id = str(10**14 + abs(hash(tag)) % 10**13)
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
        return tenant.id, phone_number_id


def create_and_start(url: str, graph_url: str, tenant_id: int, phone_number_id: str, rate: int) -> tuple[int, float]:
    from saas.billing import entitlements
    from saas.broadcasts import services
    from saas.tenants.services import tenant_snapshot

    app = app_for(url, graph_url)
    with app.app_context():
        tenant = tenant_snapshot(tenant_id)
        rights = entitlements.for_tenant(tenant)
        began = time.monotonic()
        broadcast = services.create(tenant, rights, {
            "name": "Bench", "phone_number_id": phone_number_id, "template": {"name": "spring", "language": "en_US"},
            "variables": {"body.1": {"field": "name"}, "body.2": {"field": "attr:code"}},
            "audience": {"all": True}, "messages_per_second": rate})
        checked = time.monotonic() - began
        services.start(tenant, rights, broadcast.id)
        return broadcast.id, checked


def worker(url: str, graph_url: str, paced: bool) -> None:
    """The worker's loop until nothing is left; prints WORKER {json}."""
    from saas.broadcasts.worker import runner_for

    app = app_for(url, graph_url, BROADCAST_PACING=paced, BROADCAST_BATCH=int(os.environ.get("BROADCAST_BATCH", 100)))
    with app.app_context():
        began = time.monotonic()
        claimed = runner_for(app).run(until_idle=True)
        seconds = time.monotonic() - began
    print("WORKER " + json.dumps({"claimed": claimed, "seconds": seconds,
                                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def run_worker(url: str, graph_url: str, paced: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", "--database-url", url, "--graph-url", graph_url]
                         + (["--paced"] if paced else []), capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    return json.loads(re.search(r"^WORKER (\{.*\})$", out, re.M).group(1))


def graph(delay_ms: float):
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "graph_server.py"), "--port", "0", "--delay-ms",
                             f"{delay_ms:g}", "--token", TOKEN], stdout=subprocess.PIPE, text=True)
    port = int(re.search(r"GRAPH_FAKE_PORT (\d+)", proc.stdout.readline()).group(1))
    return proc, f"http://127.0.0.1:{port}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--recipients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--delay-ms", type=float, nargs="+", default=[0.0, 200.0])
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--graph-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.database_url, args.graph_url, args.paced)
        return 0
    prepare(args.database_url)
    rows = ["| workload | recipients | WhatsApp answers after | check | sent | recipients/s | worker peak memory |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for delay in args.delay_ms:
        proc, graph_url = graph(delay)
        try:
            for count in args.recipients:
                tenant_id, number = shop(args.database_url, graph_url, count, f"b{count}d{int(delay)}")
                _, checked = create_and_start(args.database_url, graph_url, tenant_id, number, 1000)
                result = run_worker(args.database_url, graph_url, paced=False)
                rows.append(f"| pacing lifted | {count:,} | {delay:g} ms | {checked:.1f} s | {result['claimed']:,} | "
                            f"{result['claimed'] / result['seconds']:.0f} | {result['max_rss_mb']:.0f} MB |")
                print(rows[-1], flush=True)
            if delay == args.delay_ms[0] and args.paced_seconds:
                count = int(80 * args.paced_seconds)
                tenant_id, number = shop(args.database_url, graph_url, count, f"paced{int(delay)}")
                _, checked = create_and_start(args.database_url, graph_url, tenant_id, number, 80)
                result = run_worker(args.database_url, graph_url, paced=True)
                rows.append(f"| paced at 80/s | {count:,} | {delay:g} ms | {checked:.1f} s | {result['claimed']:,} | "
                            f"{result['claimed'] / result['seconds']:.1f} | {result['max_rss_mb']:.0f} MB |")
                print(rows[-1], flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
