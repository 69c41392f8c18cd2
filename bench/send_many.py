"""The send_many workload: batches of 1,000 recipients sent by the send service from a process of its own.

    .venv/bin/python bench/run.py --seconds 5 --only new send-many
    .venv/bin/python bench/run.py --seconds 5 --only new send-many --before /tmp/relay-before

A worker's way (the Procfile's ``worker``: its own process, the app built by
``create_app``, PostgreSQL), with no request: this module, run as a script,
loads the main bench tenant's sandbox number with ``send_many`` calls of
1,000 new recipients each for the run's seconds, then waits for the sandbox's
delivery receipts, and prints one ``SEND_MANY {json}`` line (recipients
accepted and refused, seconds, recipients/s, per-call latency, CPU). The
bench reports it beside the API's sends/s of the same run (``app new``,
served by gunicorn as the Procfile serves it), and the target: at least 3x.

With ``--before DIR`` (bench/before.py), the report puts another checkout's
new sends at 16 and 64 connections beside this one's, each as a ratio to the
forwarder of the same run: the API send no slower than before.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import before

BATCH = 1000
LABEL = "send_many, 1,000 recipients a call (recipients/s)"


def run(bench) -> None:
    """The loader, in a process of its own, against the bench database."""
    _, number = bench.main
    argv = [str(bench.bin / "python"), str(Path(__file__).resolve()), "--number", number,
            "--seconds", f"{bench.args.seconds:g}", "--run", str(bench.run_counter + 1)]
    bench.run_counter += 1
    print(f"send-many: {' '.join(argv[1:])}", flush=True)
    proc = bench.procs.start(argv, cwd=bench.app_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**bench.env, "PYTHONPATH": str(bench.app_dir)})
    try:
        out, err = proc.communicate(timeout=bench.args.seconds + 300)
    finally:
        bench.procs.stop(proc, grace=2)
    found = re.search(r"^SEND_MANY (\{.*\})$", out, re.M)
    if found is None:
        raise RuntimeError(f"the send_many loader printed no result (exit {proc.returncode}):\n{out}{err[-3000:]}")
    result = json.loads(found.group(1))
    result["rps"] = result["recipients_per_s"]
    bench.notes[LABEL] = result
    print(f"  {LABEL}: {result['rps']:.1f} recipients/s ({result['calls']} calls, {result['accepted']} accepted, "
          f"{result['refused']} refused), call p50 {result['p50_ms']:.0f} ms p99 {result['p99_ms']:.0f} ms, "
          f"CPU {result['cpu_ms_per_recipient']:.3f} ms a recipient, receipts done {result['receipts_s']:.1f} s "
          "after", flush=True)


def report_lines(bench) -> list[str]:
    lines = []
    many = bench.notes.get(LABEL)
    if many:
        for connections in (16, 64):
            api = bench.get("app new", connections)
            if api:
                lines.append(f"- send_many / API sends, same run: {many['rps']:.1f} recipients/s / {api['rps']:.1f} "
                             f"sends/s at {connections} connections = {many['rps'] / api['rps']:.2f}x")
        lines.append(f"- send_many: {many['calls']} calls of {BATCH} new recipients, {many['accepted']} accepted, "
                     f"{many['refused']} refused, call p50 {many['p50_ms']:.0f} ms, p99 {many['p99_ms']:.0f} ms; "
                     f"the loader's CPU {many['cpu_ms_per_recipient']:.3f} ms a recipient (its sandbox receipts "
                     f"included, done {many['receipts_s']:.1f} s after the last call)")
    for connections in (16, 64):
        then, forwarder = bench.get(before.LABEL, connections), bench.get("forwarder new", connections)
        for label, what in ((before.AS_BEFORE, "the plan's features as before"),
                            (before.NOW, "the enterprise plan as it is now")):
            now = bench.get(label, connections)
            if then and now:
                line = (f"- API new sends at {connections}, {what}, this code / before: {now['rps']:.1f} / "
                        f"{then['rps']:.1f} req/s = {now['rps'] / then['rps']:.2f}")
                if forwarder:
                    line += (f"; ratio to the forwarder {now['rps'] / forwarder['rps']:.2f} vs "
                             f"{then['rps'] / forwarder['rps']:.2f}")
                lines.append(line)
    return lines


def targets(bench) -> list[tuple[str, str]]:
    out = []
    many, api = bench.notes.get(LABEL), bench.get("app new", 16)
    if many and api:
        ratio = many["rps"] / api["rps"]
        out.append(("PASS" if ratio >= 3 else "FAIL",
                    f"send_many recipients/s >= 3x API sends/s at 16 connections (got {ratio:.2f}x)"))
    for connections in (16, 64):
        then, now = bench.get(before.LABEL, connections), bench.get(before.AS_BEFORE, connections)
        if then and now:
            ratio = now["rps"] / then["rps"]
            if then["non2xx"] or now["non2xx"]:
                # Refusals are fast: a server that answered errors (an old app on a newer schema) measured nothing.
                out.append(("FAIL", f"API new sends at {connections} compared with before: not measured, "
                                    f"{then['non2xx']} non-2xx before, {now['non2xx']} now"))
                continue
            # Two servers measured one after the other on a shared machine: 10% is noise, not a loss.
            out.append(("PASS" if ratio >= 0.9 else "FAIL",
                        f"API new sends at {connections}, plan features as before, no slower than before, within noise "
                        f"(got {ratio:.2f}x)"))
    return out


# -- the loader (this file run as a script, in the app's checkout) ------------------------------------
def load(number: str, seconds: float, run_id: int) -> dict:
    from flask import has_app_context

    from saas import create_app
    from saas.extensions import db
    from saas.messaging.models import PhoneNumber
    from saas.messaging.outbound import send_service
    from saas.tenants.services import tenant_snapshot

    app = create_app()
    with app.app_context():
        tenant_id = db.session.query(PhoneNumber.tenant_id).filter_by(phone_number_id=number).scalar()
        tenant = tenant_snapshot(tenant_id)
        db.session.remove()
    assert not has_app_context()
    service = send_service(app)
    calls, accepted, refused = [], 0, 0
    cpu_started, started = _cpu(), time.monotonic()
    while time.monotonic() - started < seconds:
        items = [{"messaging_product": "whatsapp", "to": f"5{run_id % 100:02d}{len(calls):05d}{n:04d}", "type": "text",
                  "text": {"body": "bench"}} for n in range(BATCH)]
        call_started = time.monotonic()
        results = service.send_many(tenant, number, items)
        calls.append(time.monotonic() - call_started)
        accepted += sum(r.accepted for r in results)
        refused += sum(not r.accepted for r in results)
    elapsed = time.monotonic() - started
    app.extensions["background"].join(300)
    receipts = time.monotonic() - started - elapsed
    return {"calls": len(calls), "recipients": accepted + refused, "accepted": accepted, "refused": refused,
            "seconds": elapsed, "recipients_per_s": (accepted + refused) / elapsed,
            "p50_ms": statistics.median(calls) * 1000,
            "p99_ms": sorted(calls)[min(len(calls) - 1, int(len(calls) * 0.99))] * 1000,
            "cpu_ms_per_recipient": (_cpu() - cpu_started) * 1000 / max(accepted + refused, 1),
            "receipts_s": receipts}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="send_many loader (run by bench/run.py)")
    parser.add_argument("--number", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--run", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    print("SEND_MANY " + json.dumps(load(args.number, args.seconds, args.run)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
