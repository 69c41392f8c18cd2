"""``inbound``: customers writing in at a steady rate while a keyword rule answers them and agents reply.

The live tenant (enterprise: the inbox and automation) gets a rule over the API: a message containing
"hello" is answered with a text. The app is served as the Procfile serves it with WHATSAPP_GRAPH_URL at
bench/graph_server.py (answering at once; it notes when the first send to each recipient arrives). Fifty
customers write first (their threads, whose windows are then open, are the ones agents answer); then a
loader in its own process (this file run as a script) posts WhatsApp's signed webhook at RATE inbound messages
a second, each from a new customer, and meanwhile replies through the API (``POST /api/v1/threads/{id}/replies``)
at REPLY_RATE a second, timing each. Afterwards: for each inbound message, from its post to the auto-reply's
arrival at the Graph fake (p50, p99, and how many never arrived within WAIT seconds), and the replies' p50/p99.
Targets: the auto-reply within 1 s at p99 at 100 inbound messages a second; an agent's reply p99 under 300 ms.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RATE = 100
REPLY_RATE = 10
WAIT = 10.0
THREADS_FIRST = 50
LABEL = "inbound with a keyword rule"


def notification(number: str, sender: str, text: str) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550200001", "phone_number_id": number},
            "contacts": [{"profile": {"name": f"Customer {sender[-4:]}"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": "wamid.in" + secrets.token_hex(16), "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": "hello, where is my order?"}}]}}]}]}


def signed(payload: dict, secret: str) -> tuple[bytes, dict]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


# -- the bench's side ----------------------------------------------------------------------------
def run(bench) -> None:
    import httpx
    import psycopg
    from live_sends import GraphFake

    key, number = bench.live
    fake = GraphFake(bench, bench.live_token, delay_ms=0)
    proc, port = bench.serve("inbound", bench.web_command, bench.app_dir,
                             {"SANDBOX_LATENCY_MS": "0", "WHATSAPP_GRAPH_URL": fake.url})
    base = f"http://127.0.0.1:{port}"
    secret = bench.env["WHATSAPP_APP_SECRET"]
    try:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
            rule = http.post("/api/v1/automation/rules", json={
                "name": "Order questions", "enabled": True, "trigger": "keyword", "match": "contains",
                "pattern": "hello", "actions": [{"type": "reply", "message": {
                    "type": "text", "text": {"body": "Thanks! Track your order at https://shop.example/track"}}}]})
            if rule.status_code != 201:
                raise RuntimeError(f"inbound: the rule was refused ({rule.status_code}): {rule.text}")
            first = [f"1650555{n:04d}" for n in range(THREADS_FIRST)]
            for sender in first:
                body, headers = signed(notification(number, sender, "hello"), secret)
                if http.post("/webhooks/whatsapp", content=body, headers=headers).status_code != 200:
                    raise RuntimeError("inbound: the webhook refused a signed notification")
        threads = wait_for_threads(bench, psycopg, first)
        done = subprocess.run(
            [str(bench.bin / "python"), str(Path(__file__)), "--base", base, "--key", key, "--number", number,
             "--seconds", f"{bench.args.seconds:g}", "--threads", ",".join(map(str, threads))],
            cwd=BENCH_DIR, env=bench.env, capture_output=True, text=True, timeout=bench.args.seconds + 120)
        found = [line for line in done.stdout.splitlines() if line.startswith("INBOUND ")]
        if done.returncode != 0 or not found:
            raise RuntimeError(f"inbound loader failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        loaded = json.loads(found[-1][len("INBOUND "):])
        deadline = time.monotonic() + WAIT
        arrivals = fake.stats("arrivals")
        while time.monotonic() < deadline and not all(s in arrivals for s in loaded["posted"]):
            time.sleep(0.2)
            arrivals = fake.stats("arrivals")
        bench.notes[LABEL] = summarise(loaded, arrivals)
        print(f"  {LABEL}: {bench.notes[LABEL]}", flush=True)
    finally:
        bench.procs.stop(proc)
        fake.stop()


def wait_for_threads(bench, psycopg, senders: list[str], limit: float = 60.0) -> list[int]:
    deadline = time.monotonic() + limit
    with psycopg.connect(bench.url, autocommit=True) as conn:
        while True:
            rows = conn.execute("SELECT id FROM inbox_threads WHERE wa_id = ANY(%s)", (senders,)).fetchall()
            if len(rows) == len(senders) or time.monotonic() > deadline:
                return [row[0] for row in rows]
            time.sleep(0.2)


def summarise(loaded: dict, arrivals: dict) -> dict:
    posted = loaded["posted"]
    lags = [arrivals[s] - t for s, t in posted.items() if s in arrivals]
    replies = loaded["reply_ms"]
    return {"inbound": len(posted), "inbound_per_s": loaded["inbound_per_s"], "webhook_non_200": loaded["non_200"],
            "answered": len(lags), "unanswered": len(posted) - len(lags),
            "auto_reply_p50_ms": round(1000 * percentile(lags, 50), 1) if lags else None,
            "auto_reply_p99_ms": round(1000 * percentile(lags, 99), 1) if lags else None,
            "replies": len(replies), "reply_non_201": loaded["reply_non_201"],
            "reply_p50_ms": percentile(replies, 50), "reply_p99_ms": percentile(replies, 99)}


def report_lines(bench) -> list[str]:
    got = bench.notes.get(LABEL)
    if not got:
        return []
    return [f"- Inbound with a keyword rule: {got['inbound']} messages at {got['inbound_per_s']:.0f}/s, "
            f"{got['answered']} auto-replies reached the Graph fake (p50 {got['auto_reply_p50_ms']} ms, p99 "
            f"{got['auto_reply_p99_ms']} ms after the webhook), {got['unanswered']} not within {WAIT:g} s; "
            f"{got['replies']} API replies meanwhile, p50 {got['reply_p50_ms']} ms, p99 {got['reply_p99_ms']} ms"]


def targets(bench) -> list[tuple[str, str]]:
    got = bench.notes.get(LABEL)
    if not got:
        return [("SKIP", "auto-reply p99 <= 1 s at 100 inbound/s; agent reply p99 < 300 ms (not measured)")]
    fast = (got["auto_reply_p99_ms"] is not None and got["auto_reply_p99_ms"] <= 1000 and not got["unanswered"]
            and got["inbound_per_s"] >= 0.95 * RATE and not got["webhook_non_200"])
    replies = got["reply_p99_ms"] is not None and got["reply_p99_ms"] < 300 and not got["reply_non_201"]
    return [("PASS" if fast else "FAIL",
             f"auto-reply reaches the Graph within 1 s at p99, at {RATE} inbound/s (got p99 "
             f"{got['auto_reply_p99_ms']} ms at {got['inbound_per_s']:.0f}/s, {got['unanswered']} unanswered)"),
            ("PASS" if replies else "FAIL",
             f"an agent's reply p99 < 300 ms meanwhile (got {got['reply_p99_ms']} ms, {got['reply_non_201']} not 201)")]


# -- the loader (this file run as a script) ---------------------------------------------------------
def load(args) -> dict:
    import httpx

    secret = __import__("os").environ["WHATSAPP_APP_SECRET"]
    threads = [int(t) for t in args.threads.split(",") if t]
    posted: dict[str, float] = {}
    non_200 = [0]
    reply_ms: list[float] = []
    reply_non_201 = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds
    prefix = "16507"  # with six digits: a US number of its own per inbound message

    def inbound(worker: int, workers: int):
        with httpx.Client(base_url=args.base, timeout=30) as http:
            n = worker
            started = time.monotonic()
            while True:
                due = started + n / RATE
                if due >= stop_at:
                    return
                time.sleep(max(0.0, due - time.monotonic()))
                sender = f"{prefix}{n:06d}"
                body, headers = signed(notification(args.number, sender, "hello"), secret)
                at = time.time()
                status = http.post("/webhooks/whatsapp", content=body, headers=headers).status_code
                with lock:
                    posted[sender] = at
                    non_200[0] += status != 200
                n += workers

    def replies():
        with httpx.Client(base_url=args.base, timeout=30, headers={"Authorization": f"Bearer {args.key}"}) as http:
            n = 0
            started = time.monotonic()
            while threads:
                due = started + n / REPLY_RATE
                if due >= stop_at:
                    return
                time.sleep(max(0.0, due - time.monotonic()))
                began = time.perf_counter()
                status = http.post(f"/api/v1/threads/{threads[n % len(threads)]}/replies",
                                   json={"type": "text", "text": f"An agent here ({n})"}).status_code
                with lock:
                    reply_ms.append(round(1000 * (time.perf_counter() - began), 1))
                    reply_non_201[0] += status != 201
                n += 1

    workers = 16
    pool = [threading.Thread(target=inbound, args=(w, workers)) for w in range(workers)]
    pool.append(threading.Thread(target=replies))
    began = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {"posted": posted, "inbound_per_s": len(posted) / (time.monotonic() - began), "non_200": non_200[0],
            "reply_ms": reply_ms, "reply_non_201": reply_non_201[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="the inbound workload's loader")
    parser.add_argument("--base", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--number", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", default="")
    args = parser.parse_args(argv)
    print("INBOUND " + json.dumps(load(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
