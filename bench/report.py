"""The run's report: a table of every measured point, the comparisons, and the targets with PASS/FAIL."""
from __future__ import annotations

import datetime
import os
import subprocess

import analytics
import broadcast
import export
import inbound
import inbox_page
import live_sends
import noisy_neighbour
import send_many
from common import CONNECTIONS, SLOW_CLIENTS, WRK_TIMEOUT_S, fmt, ms
from ingest import INGEST_POINTS, STATUSES_PER_BODY


def report(bench) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=bench.app_dir, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=bench.app_dir,
                           capture_output=True, text=True).stdout.strip()
    lines = [
        "# Send benchmark",
        "",
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os.cpu_count()} cores (nproc "
        f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}); "
        f"web: `{bench.web_command}`; commit {commit}{' (with uncommitted changes)' if dirty else ''}; "
        f"{bench.args.seconds:g} s per point, wrk timeout {WRK_TIMEOUT_S} s, PostgreSQL on loopback.",
        "",
        "| workload | connections | req/s | p50 ms | p99 ms | non-2xx | ratio to forwarder (no db) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, connections), r in bench.results.items():
        bad = str(r["non2xx"])
        if r["socket_errors"]:
            bad += f" (+{r['socket_errors']} socket errors, {r['timeouts']} timeouts)"
        ratio = None if label.startswith("ingest") else bench.ratio(
            r, bench.get("forwarder chat" if "chat" in label else "forwarder new", connections))
        lines.append(f"| {label} | {connections} | {r['rps']:.1f} | {ms(r['p50'])} | {ms(r['p99'])} | {bad} | "
                     f"{fmt(ratio)} |")
    lines.append("")
    ratios = [f"{mix} c={c}: {fmt(bench.ratio(bench.get(f'app {mix}', c), bench.get(f'forwarder {mix}', c)))}"
              for mix in ("new", "chat") for c in CONNECTIONS if bench.get(f"app {mix}", c)]
    lines.append("- App / forwarder (no db) req/s: " + (", ".join(ratios) or "n/a"))
    for mix in ("new", "chat"):
        app1, ins1 = bench.get(f"app {mix}", 1), bench.get(f"forwarder-insert {mix}", 1)
        if app1 and ins1:
            lines.append(f"- p50 at 1 connection, {mix}: app {ms(app1['p50'])} ms / insert-forwarder "
                         f"{ms(ins1['p50'])} ms = {fmt(bench.ratio(app1, ins1, 'p50'))}")
    slow, fast = bench.get("app chat, sandbox 200 ms", 256), bench.get("app chat, sandbox 0 ms", 256)
    if slow and fast:
        lines.append(f"- Slow sandbox (200 ms) / instant sandbox, chat at 256: {slow['rps']:.1f} / "
                     f"{fast['rps']:.1f} req/s = {fmt(bench.ratio(slow, fast))}; 5xx: {slow['5xx']} "
                     f"(instant: {fast['5xx']})")
    loaded = bench.get(f"victim new, {SLOW_CLIENTS} slow clients", 16)
    unloaded = bench.get("victim new, unloaded", 16)
    if loaded and unloaded:
        lines.append(f"- Slow clients: victim's new sends at 16 with {SLOW_CLIENTS} slow clients "
                     f"{loaded['rps']:.1f} req/s, p99 {ms(loaded['p99'])} ms, vs unloaded "
                     f"{unloaded['rps']:.1f} req/s, p99 {ms(unloaded['p99'])} ms "
                     f"(= {fmt(bench.ratio(loaded, unloaded))}; wrk counts answered requests only); "
                     f"dribblers: {bench.notes.get('slowloris', 'n/a')}")
    ten, one = bench.get("app ten tenants new", 64), bench.get("app new", 64)
    if ten:
        lines.append(f"- Ten tenants at once vs one tenant, new at 64: {ten['rps']:.1f} / "
                     f"{ms(one and one['rps'])} req/s = {fmt(bench.ratio(ten, one))}")
    for label, c, _ in INGEST_POINTS:
        r = bench.get(label, c)
        if r:
            drained = r.get("drain_s")
            lines.append(f"- {label[0].upper() + label[1:]} at {c}: {r['statuses_per_s']:.0f} statuses/s "
                         f"({r['rps']:.1f} notifications/s x {STATUSES_PER_BODY}), p99 {ms(r['p99'])} ms; "
                         "stored notifications were all applied "
                         + (f"{drained:.1f} s after the run" if drained is not None else "NOT within the limit")
                         + " (machine load average {:.1f} before, {:.1f} after)".format(*r["load"]))
    lines += live_sends.report_lines(bench)
    lines += noisy_neighbour.report_lines(bench) + send_many.report_lines(bench) + inbound.report_lines(bench)
    if "ingest_verdict" in bench.notes:
        lines.append(f"- Ingest check: {bench.notes['ingest_verdict']}")
    if "usage_verdict" in bench.notes:
        lines.append(f"- Usage check: {bench.notes['usage_verdict']}")
        if bench.notes["usage_output"]:
            lines += ["", "```", bench.notes["usage_output"][-2000:], "```"]
    lines += broadcast.report_lines(bench)
    lines += ["", "## Targets", ""] + [f"- {verdict}: {text}" for verdict, text in targets(bench)]
    return "\n".join(lines) + "\n"

def targets(bench) -> list[tuple[str, str]]:
    def check(value, ok, text, shown):
        if value is None:
            return "SKIP", f"{text} (not measured)"
        return ("PASS" if ok(value) else "FAIL"), f"{text} (got {shown(value)})"

    out = []
    for mix in ("new", "chat"):
        for c in (16, 64):
            out.append(check(bench.ratio(bench.get(f"app {mix}", c), bench.get(f"forwarder {mix}", c)),
                             lambda r: r >= 0.33, f"app/forwarder >= 0.33 for {mix} at {c}", fmt))
    for mix in ("new", "chat"):
        r = bench.get(f"app {mix}", 16)
        p99 = r and (float("inf") if r["p99"] is None else r["p99"])  # nothing answered: as bad as it gets
        out.append(check(p99, lambda p: p < 250, f"app p99 < 250 ms for {mix} at 16", lambda p: f"{p:.1f} ms"))
    out.append(check(bench.ratio(bench.get("app ten tenants new", 64), bench.get("forwarder new", 64)),
                     lambda r: r >= 0.33, "ten tenants total >= 0.33 of forwarder new at 64", fmt))
    for mix in ("new", "chat"):
        out.append(check(bench.ratio(bench.get(f"app {mix}", 1), bench.get(f"forwarder-insert {mix}", 1), "p50"),
                         lambda r: r <= 2.0, f"app p50 at 1 connection <= 2x insert-forwarder p50, {mix}",
                         lambda r: f"{r:.2f}x"))
    for label, c in (("ingest", 16), ("ingest paced ~40/s", 4)):
        r = bench.get(label, c)
        out.append(check(r and r["statuses_per_s"], lambda v: v >= 2000,
                         f"{label} >= 2,000 statuses/s at {c} connections", lambda v: f"{v:.0f}/s"))
        out.append(check(r and (float("inf") if r["p99"] is None else r["p99"]), lambda p: p < 250,
                         f"{label} p99 < 250 ms at {c} connections", lambda p: f"{p:.1f} ms"))
    paced = bench.get("ingest paced ~40/s", 4)
    out.append(check(paced and paced.get("drain_s"), lambda s: s is not None and s < 5,
                     "paced ingest: applying keeps up (backlog applied within 5 s of the run's end)",
                     lambda s: f"{s:.1f} s"))
    if "ingest_verdict" in bench.notes:
        out.append((bench.notes["ingest_verdict"][:4], "every ingested status applied"))
    slow, fast = bench.get("app chat, sandbox 200 ms", 256), bench.get("app chat, sandbox 0 ms", 256)
    r = bench.ratio(slow, fast)
    out.append(check(None if r is None else (r, slow["5xx"]), lambda v: v[0] >= 0.8 and v[1] == 0,
                     "slow sandbox at 256 >= 0.8x instant sandbox, no 5xx",
                     lambda v: f"{v[0]:.2f}x, {v[1]} 5xx"))
    return (out + live_sends.targets(bench) + noisy_neighbour.targets(bench) + send_many.targets(bench)
            + inbox_page.targets(bench) + inbound.targets(bench) + broadcast.targets(bench)
            + analytics.targets(bench) + export.targets(bench))
