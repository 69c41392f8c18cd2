"""``--before DIR``: another checkout's app (say the commit before a change, ``git worktree add /tmp/before
<commit>``), served the same way in the same run on a database of its own, prepared by that checkout's own
migrations, seed and CLI; its ``new`` sends at 16 and 64 connections are measured in turns with this app's,
both served at once: this app's main tenant (the enterprise plan as it is now, features added since included)
and a tenant on a copy of that plan with the features the other checkout's enterprise plan has (the send
path compared like for like, what the new features cost a send apart)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Json

LABEL = "before app new"
NOW = "app new, beside before"
AS_BEFORE = "app new, plan as before"


def database_url(url: str) -> str:
    """The bench database's URL with ``_before`` added to its name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_before"))


def prepare(bench, before_dir: Path) -> tuple[dict, tuple[str, str]]:
    """A fresh database for the other checkout: its schema, seed and one enterprise tenant without a
    rate limit; the environment to serve it with, and the tenant's (key, number)."""
    url = database_url(bench.url)
    dbname = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    env = {**bench.env, "DATABASE_URL": url}

    def flask(*argv: str) -> str:
        done = subprocess.run([str(bench.bin / "flask"), "--app", "wsgi", *argv], cwd=before_dir, env=env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"before: flask {' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    flask("db", "upgrade")
    flask("seed")
    email = "before@bench.example.com"
    out = flask("tenants", "create", "--name", "Bench before", "--email", email, "--password", "bench password",
                "--plan", "enterprise")
    number = re.search(r"phone_number_id (\S+)", out).group(1)
    key = flask("keys", "create", email).strip().splitlines()[-1].strip()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE plans SET rate_limit_per_minute = 10000000 WHERE code = 'enterprise'")
        features = conn.execute("SELECT features FROM plans WHERE code = 'enterprise'").fetchone()[0]
    return {"DATABASE_URL": url}, (key, number), features


def plan_as_before(bench, features: list) -> tuple[str, str]:
    """A tenant of this app on a copy of its enterprise plan selling ``features`` (the other checkout's); its
    (key, number)."""
    email = "as-before@bench.example.com"
    out = bench.flask_ok("tenants", "create", "--name", "Bench as before", "--email", email,
                         "--password", "bench password", "--plan", "enterprise")
    number = re.search(r"phone_number_id (\S+)", out).group(1)
    key = bench.flask_ok("keys", "create", email).strip().splitlines()[-1].strip()
    with psycopg.connect(bench.url, autocommit=True, row_factory=dict_row) as conn:
        plan = conn.execute("SELECT * FROM plans WHERE code = 'enterprise'").fetchone()
        plan = {name: Json(value) if isinstance(value, (list, dict)) else value for name, value in plan.items()
                if name != "id" and not name.startswith("stripe_")}
        plan.update(code="bench_as_before", name="Enterprise as before", features=Json(features))
        plan_id = conn.execute(sql.SQL("INSERT INTO plans ({}) VALUES ({}) RETURNING id").format(
            sql.SQL(", ").join(map(sql.Identifier, plan)), sql.SQL(", ").join(sql.Placeholder() * len(plan))),
            list(plan.values())).fetchone()["id"]
        conn.execute("UPDATE subscriptions SET plan_id = %s WHERE tenant_id = "
                     "(SELECT tenant_id FROM users WHERE email = %s)", (plan_id, email))
    return key, number


def run(bench, before_dir: str, rounds: int = 2) -> None:
    """The other checkout's app on its own database and this app, both served at once, their new sends at 16
    and 64 connections measured in turns (``rounds`` times each, the machine's noise falling on both alike);
    each point's requests/s is the mean of its rounds, its latencies the worst round's."""
    before_dir = Path(before_dir).resolve()
    env, sender, features = prepare(bench, before_dir)
    as_before = plan_as_before(bench, features)
    print(f"before: {bench.web_command} from {before_dir} on {env['DATABASE_URL']}", flush=True)
    then_proc, then_port = bench.serve("before", bench.web_command, before_dir, {**env, "SANDBOX_LATENCY_MS": "0"})
    now_proc, now_port = bench.serve("beside-before", bench.web_command, bench.app_dir, {"SANDBOX_LATENCY_MS": "0"})
    servers = ((LABEL, then_port, sender), (AS_BEFORE, now_port, as_before), (NOW, now_port, bench.main))
    try:
        for _, port, who in servers:
            bench.warm_up(port, [who])
        runs: dict[tuple[str, int], list[dict]] = {}
        for _ in range(rounds):
            for connections in (16, 64):
                for label, port, who in servers:
                    result = bench.wrk(port, "new", connections, [who])
                    runs.setdefault((label, connections), []).append(result)
                    print(f"  {label:34s} c={connections:<4d} {result['rps']:8.1f} req/s  non-2xx {result['non2xx']}",
                          flush=True)
        for key, results in runs.items():
            bench.results[key] = combined(results)
    finally:
        bench.procs.stop(then_proc)
        bench.procs.stop(now_proc)


def combined(results: list[dict]) -> dict:
    """Rounds of one point as one: mean requests/s, summed counts, the worst latencies."""
    out = dict(results[-1])
    out["rps"] = sum(r["rps"] for r in results) / len(results)
    for key in ("requests", "non2xx", "5xx", "socket_errors", "timeouts"):
        out[key] = sum(r[key] for r in results)
    for key in ("p50", "p99"):
        values = [r[key] for r in results if r[key] is not None]
        out[key] = max(values) if values else None
    statuses: dict[int, int] = {}
    for r in results:
        for code, n in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    out["statuses"] = statuses
    return out
