"""Floor: a bare asyncio client (websockets + uvloop + orjson), no field handling, nothing stored.

    bench/.peer-venv/bin/python bench/bare_asyncio.py URL SYMBOLS SECONDS

Runs in the bench's own virtualenv (`make bench-peer`: bench/requirements-floor.txt), never the
project's: websockets and uvloop are no dependency of ltp. Subscribes like bench/bare_client.py,
then takes every message as bytes (`recv(decode=False)`: no UTF-8 pass) and decodes it with
orjson, counting those that carry a topic. Prints one JSON line: frames, seconds, rate, CPU
per message; the window starts after 1 s of warm-up, as bare_client's.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import orjson
import uvloop
from websockets.asyncio.client import connect


async def run(url: str, n_symbols: int, seconds: float) -> dict[str, float]:
    topics = [f"tickers.SIM{i:03d}USDT" for i in range(n_symbols)]
    count = 0
    loads = orjson.loads

    async with connect(url, compression=None, max_size=1 << 22, ping_interval=None) as ws:
        for i in range(0, len(topics), 10):
            await ws.send(json.dumps({"op": "subscribe", "args": topics[i:i + 10]}))

        async def consume() -> None:
            nonlocal count
            recv = ws.recv
            while True:
                if "topic" in loads(await recv(decode=False)):
                    count += 1

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.0)  # warm-up: connect, subscribe, first frames
        c0, t0, cpu0 = count, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        c1, t1, cpu1 = count, time.perf_counter(), time.process_time()
        task.cancel()
    n = c1 - c0
    return {"frames": n, "seconds": t1 - t0, "rate": n / (t1 - t0), "cpu_us_per_msg": (cpu1 - cpu0) / max(1, n) * 1e6}


def main() -> None:
    url, n_symbols, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    out = uvloop.run(run(url, n_symbols, seconds))
    print(json.dumps(out), flush=True)
    os._exit(0)  # the connection's close handshake is not part of the figure


if __name__ == "__main__":
    main()
