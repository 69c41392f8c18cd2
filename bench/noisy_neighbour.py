"""The noisy-neighbour workload of bench/run.py: one tenant hammering past its plan's limit while the others send.

Two app servers, one after the other: the app as configured (a refusal is answered after
RATE_LIMIT_PAUSE_SECONDS, 1 s), then with RATE_LIMIT_PAUSE_SECONDS=0 (answered at once: what a refusal
itself costs). On each, back to back, each point ``--seconds`` long:

  others alone       the ten tenants' sends (bench/new.lua, round robin) at OTHERS_CONNECTIONS
  others + hammer    the same, while a tenant on the free plan (60 requests a minute) sends as fast as
                     HAMMER_CONNECTIONS connections can: past its 60 a minute every request is refused (429)
  hammer alone       the hammering tenant only (on the server without the pause): the server's CPU per
                     refusal, less what the server burns idle over as long (its housekeeping)

The first two points alternate in SLICES slices; both wrk runs of a hammered slice start together. The report gives the others' req/s and p99 with the
hammer and alone, as ratios (target: the others keep 0.8x of their rate), the refusals answered, and the
server's CPU (gunicorn master and workers) per refusal and per send.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from live_sends import group_cpu_seconds, last_message_id, wait_walked

OTHERS_CONNECTIONS = 16
HAMMER_CONNECTIONS = int(os.environ.get("BENCH_HAMMER_CONNECTIONS", 64))
BENCH_DIR = Path(__file__).resolve().parent
# RATE_LIMIT_PAUSE_SECONDS of each server: the default, then none (BENCH_PAUSES picks others).
PAUSES = tuple(os.environ.get("BENCH_PAUSES", "1,0").split(","))
SLICES = 5  # the alone and hammered points alternate in this many slices


def labels(pause: str) -> dict[str, str]:
    where = f"RATE_LIMIT_PAUSE_SECONDS={pause}"
    return {"alone": f"others new, alone ({where})", "loaded": f"others new, one tenant hammering ({where})",
            "hammer": f"hammering tenant, with the others ({where})", "solo": f"hammering tenant, alone ({where})"}


class NoisyNeighbourPhase:
    def __init__(self, bench, parse_wrk, pause: str):
        self.bench = bench
        self.parse_wrk = parse_wrk
        self.pause = pause
        self.name = f"app-noisy-neighbour-pause-{pause}"
        self.labels = labels(pause)

    def env(self) -> dict:
        return {"SANDBOX_LATENCY_MS": "0", "RATE_LIMIT_PAUSE_SECONDS": self.pause}

    def start_wrk(self, port: int, connections: int, senders, threads: int, seconds: float) -> subprocess.Popen:
        bench = self.bench
        bench.run_counter += 1
        env = {**bench.env, "BENCH_RUN": str(bench.run_counter),
               "BENCH_TENANTS": ",".join(f"{key}:{number}" for key, number in senders)}
        argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
                "--timeout", "10s", "--latency", "-s", str(BENCH_DIR / "new.lua"), f"http://127.0.0.1:{port}/"]
        return bench.procs.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def finish(self, proc: subprocess.Popen, seconds: float) -> dict:
        bench = self.bench
        try:
            out, err = proc.communicate(timeout=seconds + 60)
        finally:
            bench.procs.stop(proc, grace=2)
        result = self.parse_wrk(out)
        if result is None:
            raise RuntimeError(f"wrk printed no result (exit {proc.returncode}):\n{out}{err}")
        return result

    def record(self, label: str, connections: int, slices: list[dict]) -> dict:
        """Slices of one point as one result: rates summed over their time, the median slice's p50 and p99."""
        seconds = sum(piece["requests"] / piece["rps"] for piece in slices if piece["rps"]) or 1e-9
        statuses: dict[int, int] = {}
        for piece in slices:
            for code, n in piece["statuses"].items():
                statuses[code] = statuses.get(code, 0) + n
        middle = sorted(slices, key=lambda piece: piece["p99"] or 0)[len(slices) // 2]
        result = {**middle, "requests": sum(piece["requests"] for piece in slices), "statuses": statuses,
                  "rps": sum(piece["requests"] for piece in slices) / seconds,
                  "non2xx": sum(n for code, n in statuses.items() if not 200 <= code < 300),
                  "5xx": sum(n for code, n in statuses.items() if code >= 500),
                  "socket_errors": sum(piece["socket_errors"] for piece in slices),
                  "timeouts": sum(piece["timeouts"] for piece in slices)}
        self.bench.results[(label, connections)] = result
        print(f"  {label:34s} c={connections:<4d} {result['rps']:8.1f} req/s  p99 {result['p99'] or 0:8.1f} ms  "
              f"statuses {dict(sorted(statuses.items()))}", flush=True)
        return result

    def quiet(self, port: int) -> None:
        """Until the server is idle: earlier requests answered and every sandbox send's receipts done, so no
        slice pays for the one before it."""
        self.bench.settle(port)
        wait_walked(self.bench.url, 0)

    def work(self, port: int) -> None:
        """Alone and hammered, in SLICES alternating slices of --seconds / SLICES each: a machine whose load
        drifts (other work on its cores) weighs on both points alike."""
        bench, pgid, names = self.bench, self.bench.serving.pid, self.labels
        piece = max(2.0, bench.args.seconds / SLICES)
        # The hammering tenant uses up its minute's 60 requests first: what follows is refusals only.
        self.finish(self.start_wrk(port, 4, [bench.hammer], 1, 2), 2)
        alone, loaded, hammered, cpu_alone = [], [], [], 0.0
        for _ in range(SLICES):
            self.quiet(port)
            cpu, after_id = group_cpu_seconds(pgid), last_message_id(bench.url)
            alone.append(self.finish(self.start_wrk(port, OTHERS_CONNECTIONS, bench.ten, 2, piece), piece))
            wait_walked(bench.url, after_id)  # the sends' receipts count in their CPU
            cpu_alone += group_cpu_seconds(pgid) - cpu
            self.quiet(port)
            others = self.start_wrk(port, OTHERS_CONNECTIONS, bench.ten, 2, piece)
            hammer = self.start_wrk(port, HAMMER_CONNECTIONS, [bench.hammer], 1, piece)
            loaded.append(self.finish(others, piece))
            hammered.append(self.finish(hammer, piece))
        result = self.record(names["alone"], OTHERS_CONNECTIONS, alone)
        result["server_cpu_ms"] = 1000 * cpu_alone / max(result["statuses"].get(200, 0), 1)
        self.record(names["loaded"], OTHERS_CONNECTIONS, loaded)
        self.record(names["hammer"], HAMMER_CONNECTIONS, hammered)
        bench.settle(port)
        if self.pause != "0":
            return
        self.quiet(port)  # then what the idle server burns over as long as a point
        cpu = group_cpu_seconds(pgid)
        time.sleep(bench.args.seconds)
        idle = group_cpu_seconds(pgid) - cpu
        cpu = group_cpu_seconds(pgid)
        solo = self.record(names["solo"], HAMMER_CONNECTIONS, [self.finish(
            self.start_wrk(port, HAMMER_CONNECTIONS, [bench.hammer], 1, bench.args.seconds), bench.args.seconds)])
        solo["server_cpu_ms"] = 1000 * (group_cpu_seconds(pgid) - cpu - idle) / max(solo["statuses"].get(429, 0), 1)
        solo["idle_cpu_s"] = idle
        bench.settle(port)


def report_lines(bench) -> list[str]:
    lines = []
    for pause in PAUSES:
        names = labels(pause)
        alone, loaded = bench.get(names["alone"], OTHERS_CONNECTIONS), bench.get(names["loaded"], OTHERS_CONNECTIONS)
        hammer = bench.get(names["hammer"], HAMMER_CONNECTIONS)
        if not (alone and loaded and hammer):
            continue
        lines.append(
            f"- Noisy neighbour, RATE_LIMIT_PAUSE_SECONDS={pause}: the ten other tenants' sends at "
            f"{OTHERS_CONNECTIONS} connections while one tenant on the free plan hammers past its limit at "
            f"{HAMMER_CONNECTIONS}: {loaded['rps']:.1f} req/s, p99 {loaded['p99'] or 0:.1f} ms, vs alone "
            f"{alone['rps']:.1f} req/s, p99 {alone['p99'] or 0:.1f} ms (rate {bench.ratio(loaded, alone):.2f}x, p99 "
            f"{(loaded['p99'] or 0) / max(alone['p99'] or 0, 1e-9):.2f}x); meanwhile the hammering tenant got "
            f"{hammer['statuses'].get(429, 0)} refusals ({hammer['statuses'].get(429, 0) / bench.args.seconds:.0f}/s) "
            f"and {hammer['statuses'].get(200, 0)} sends; server CPU per send, the others alone: "
            f"{alone.get('server_cpu_ms', 0):.2f} ms (their receipts included)")
        solo = bench.get(names["solo"], HAMMER_CONNECTIONS)
        if solo:
            lines.append(
                f"- Server CPU (gunicorn master and workers) per refusal, the hammering tenant alone, answered at "
                f"once: {solo['server_cpu_ms']:.3f} ms ({solo['statuses'].get(429, 0) / bench.args.seconds:.0f} "
                f"refusals/s; the {solo['idle_cpu_s']:.2f} CPU s the idle server used over as long taken off)")
    return lines


def targets(bench) -> list[tuple[str, str]]:
    names = labels(PAUSES[0])
    alone, loaded = bench.get(names["alone"], OTHERS_CONNECTIONS), bench.get(names["loaded"], OTHERS_CONNECTIONS)
    text = "noisy neighbour: the others' rate with one tenant hammering past its limit >= 0.8x their rate alone, no 5xx"
    if not (alone and loaded):
        return [("SKIP", f"{text} (not measured)")]
    ratio = bench.ratio(loaded, alone)
    ok = ratio >= 0.8 and loaded["5xx"] == 0
    return [("PASS" if ok else "FAIL", f"{text} (got {ratio:.2f}x, {loaded['5xx']} 5xx)")]
