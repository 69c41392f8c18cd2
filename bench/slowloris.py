"""Slow clients: connections that send a send's full headers, then dribble its body.

Each of --connections connections sends the headers of
``POST /v23.0/{phone_number_id}/messages`` with ``Content-Length: 200`` and then
one byte of the 200-byte JSON body per --interval seconds. A connection the
server answers or closes is opened again, up to --max-connects in all. Stops
by itself after --seconds (or on SIGTERM/SIGINT), closes every connection and
prints one line: ``SLOWLORIS {json}`` with what happened.

Loopback only:

    python bench/slowloris.py --port 8000 --number 123 --key relay_... --seconds 30
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
import time

BODY_BYTES = 200


def body() -> bytes:
    text = '{"messaging_product":"whatsapp","to":"15550009999","type":"text","text":{"body":"slow"}}'
    return text.encode().ljust(BODY_BYTES, b" ")


class Stats:
    def __init__(self):
        self.connects = 0
        self.connect_errors = 0
        self.answered = 0      # the server sent something back before the body was complete
        self.closed = 0        # the server closed or reset the connection
        self.bytes_sent = 0
        self.open = 0
        self.max_open = 0


async def dribbler(args, stats: Stats, stop: asyncio.Event, budget: list[int]):
    request_head = (
        f"POST /v23.0/{args.number}/messages HTTP/1.1\r\n"
        f"Host: {args.host}:{args.port}\r\n"
        f"Authorization: Bearer {args.key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {BODY_BYTES}\r\n\r\n").encode()
    payload = body()
    while not stop.is_set() and budget[0] > 0:
        budget[0] -= 1
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 5)
        except (OSError, asyncio.TimeoutError):
            stats.connect_errors += 1
            await asyncio.sleep(args.interval)
            continue
        stats.connects += 1
        stats.open += 1
        stats.max_open = max(stats.max_open, stats.open)
        try:
            writer.write(request_head)
            await writer.drain()
            for i in range(BODY_BYTES):
                # Waiting for an answer doubles as the pause between two bytes.
                try:
                    data = await asyncio.wait_for(reader.read(4096), args.interval)
                except asyncio.TimeoutError:
                    data = None
                if stop.is_set():
                    return
                if data is not None:
                    if data:
                        stats.answered += 1
                    else:
                        stats.closed += 1
                    break
                writer.write(payload[i:i + 1])
                await writer.drain()
                stats.bytes_sent += 1
        except (ConnectionError, OSError):
            stats.closed += 1
        finally:
            stats.open -= 1
            writer.close()


async def main(args) -> Stats:
    stats = Stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(args.seconds, stop.set)
    budget = [args.max_connects]
    tasks = [asyncio.create_task(dribbler(args, stats, stop, budget)) for _ in range(args.connections)]
    started = time.monotonic()
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stats.seconds = round(time.monotonic() - started, 1)
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--number", required=True, help="phone_number_id in the path")
    parser.add_argument("--key", required=True, help="API key sent in the headers")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two body bytes")
    parser.add_argument("--seconds", type=float, default=30.0, help="stop after this long")
    parser.add_argument("--max-connects", type=int, default=2000, help="connections opened in all, at most")
    args = parser.parse_args(argv)
    host = "127.0.0.1" if args.host == "localhost" else args.host
    if not ipaddress.ip_address(host).is_loopback:
        parser.error("only loopback addresses may be targeted")
    args.seconds = min(args.seconds, 3600.0)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    print("SLOWLORIS " + json.dumps(vars(result)), flush=True)
    sys.exit(0)
